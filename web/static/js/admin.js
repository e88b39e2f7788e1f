// Admin pages (filled in below).
export function initAdmin() {}
