// Formatting of byte counts, times and durations for people.

/** "3 d 4 h", "12 min", "40 s". */
export function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400);
  const hr = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d} d ${hr} h`;
  if (hr > 0) return `${hr} h ${m} min`;
  if (m > 0) return `${m} min`;
  return `${s} s`;
}

/** A Unix time as "2 min ago" (recent) or a local date and time. */
export function when(unixSeconds) {
  const ago = Date.now() / 1000 - unixSeconds;
  if (ago < 45) return 'just now';
  if (ago < 3600) return `${Math.round(ago / 60)} min ago`;
  if (ago < 86400) return `${Math.round(ago / 3600)} h ago`;
  return new Date(unixSeconds * 1000).toLocaleString();
}

/** The full local time, for tooltips. */
export function exact(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleString();
}

/** Bytes for people: `1.5 GiB`. */
export function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = Number(n) || 0;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}
