// The Baton release every process reports (kept equal to the root package.json version by a test).
export const BATON_VERSION = '0.1.0';
