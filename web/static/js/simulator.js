// The simulator's fake phone (filled in once the simulator's text-in function exists).
export function initSimulator() {}
