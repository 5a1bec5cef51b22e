// How the libuv engine sends, in one place for the engine, startServer and `mob serve
// --uv-mode` (the README's benchmark section says what each one does). No imports: naming a
// mode must not load node:net or the engine.
export const UV_MODES = ['corked', 'coalesced', 'plain'] as const;
export type UvMode = (typeof UV_MODES)[number];
