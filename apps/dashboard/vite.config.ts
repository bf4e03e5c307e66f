import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

const src = (p: string) => fileURLToPath(new URL(p, import.meta.url));

/**
 * The dashboard bundles the client and React packages from their sources, so
 * that a build never depends on their `dist` being current. In development
 * (`npm run dev -w @headway/dashboard`) API calls go to a hub on port 7070.
 */
export default defineConfig({
  root: src('.'),
  base: '/',
  plugins: [react()],
  resolve: {
    alias: {
      '@headway/protocol/codes': src('../../packages/protocol/src/codes.ts'),
      '@headway/client': src('../../packages/client/src/index.ts'),
      '@headway/react': src('../../packages/react/src/index.ts'),
    },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    // Asset names carry a content hash; the hub caches `/assets/*` for a year.
    assetsDir: 'assets',
  },
  server: {
    port: 5173,
    proxy: {
      '/v1': { target: 'http://127.0.0.1:7070', ws: true },
    },
  },
});
