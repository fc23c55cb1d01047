import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The demos import 'reptile-ml' by name: the package's own exports map sends a browser build to
// dist/universal.js, so `npm run build` must have run first (npm run web:build does both).
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    chunkSizeWarningLimit: 2000,
    rollupOptions: {
      input: {
        sine: fileURLToPath(new URL('./index.html', import.meta.url)),
        drawing: fileURLToPath(new URL('./drawing.html', import.meta.url)),
        omniglot: fileURLToPath(new URL('./omniglot.html', import.meta.url)),
      },
    },
  },
  worker: { format: 'es' },
});
