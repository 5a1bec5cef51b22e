// The benchmark chart: delivered frames/s and p99 latency against clients, one line per engine.
// Plain SVG, no dependencies.

export interface ChartPoint {
  clients: number;
  framesPerSec: number;
  p99Ms: number;
}

const COLORS: Record<string, string> = { native: '#d62728', 'uv-corked': '#1f77b4', 'uv-plain': '#7f7f7f' };

export function renderChart(series: Map<string, ChartPoint[]>, caption: string): string {
  const width = 1000;
  const height = 440;
  const panelW = 400;
  const panelH = 280;
  const top = 76;
  const lefts = [80, 560];
  const all = [...series.values()].flat();
  const clients = [...new Set(all.map((p) => p.clients))].sort((a, b) => a - b);
  const xMin = Math.log10(Math.min(...clients));
  const xMax = Math.log10(Math.max(...clients));
  const x = (left: number, c: number) => left + (xMax === xMin ? panelW / 2 : ((Math.log10(c) - xMin) / (xMax - xMin)) * panelW);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  out.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">mob: native epoll loop vs node:net (libuv), fan-out by client count</text>`);
  out.push(`<text x="${width / 2}" y="40" text-anchor="middle" fill="#555">${escape(caption)}</text>`);
  const panels: { title: string; value: (p: ChartPoint) => number; format: (v: number) => string; log: boolean }[] = [
    { title: 'delivered frames/s (higher is better)', value: (p) => p.framesPerSec, format: formatRate, log: true },
    { title: 'p99 send→receive latency, ms (lower is better)', value: (p) => p.p99Ms, format: (v) => (v >= 10 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toFixed(2)), log: true },
  ];
  panels.forEach((panel, index) => {
    const left = lefts[index]!;
    const values = all.map(panel.value).filter((v) => Number.isFinite(v) && v > 0);
    let lo = Math.floor(Math.log10(Math.min(...values)));
    let hi = Math.ceil(Math.log10(Math.max(...values)));
    if (hi === lo) hi = lo + 1;
    const y = (v: number) => top + panelH - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)) * panelH;
    out.push(`<text x="${left + panelW / 2}" y="${top - 6}" text-anchor="middle" font-weight="bold">${panel.title}</text>`);
    out.push(`<rect x="${left}" y="${top}" width="${panelW}" height="${panelH}" fill="none" stroke="#999"/>`);
    for (let e = lo; e <= hi; e++) {
      const yy = y(10 ** e);
      out.push(`<line x1="${left}" x2="${left + panelW}" y1="${yy}" y2="${yy}" stroke="#eee"/>`);
      out.push(`<text x="${left - 6}" y="${yy + 4}" text-anchor="end">${panel.format(10 ** e)}</text>`);
    }
    for (const c of clients) {
      const xx = x(left, c);
      out.push(`<line x1="${xx}" x2="${xx}" y1="${top}" y2="${top + panelH}" stroke="#eee"/>`);
      out.push(`<text x="${xx}" y="${top + panelH + 16}" text-anchor="middle">${c}</text>`);
    }
    out.push(`<text x="${left + panelW / 2}" y="${top + panelH + 34}" text-anchor="middle">clients (log scale)</text>`);
    for (const [engine, points] of series) {
      const color = COLORS[engine] ?? '#2ca02c';
      const sorted = [...points].sort((a, b) => a.clients - b.clients).filter((p) => Number.isFinite(panel.value(p)));
      const path = sorted.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(left, p.clients).toFixed(1)},${y(panel.value(p)).toFixed(1)}`).join(' ');
      out.push(`<path d="${path}" fill="none" stroke="${color}" stroke-width="2.5"/>`);
      for (const p of sorted) {
        out.push(`<circle cx="${x(left, p.clients).toFixed(1)}" cy="${y(panel.value(p)).toFixed(1)}" r="3.5" fill="${color}"><title>${engine}, ${p.clients} clients: ${panel.format(panel.value(p))}</title></circle>`);
      }
    }
    void lo;
    lo = lo + 0;
  });
  let lx = 80;
  for (const engine of series.keys()) {
    const color = COLORS[engine] ?? '#2ca02c';
    out.push(`<rect x="${lx}" y="${height - 22}" width="14" height="4" fill="${color}"/>`);
    out.push(`<text x="${lx + 20}" y="${height - 16}">${engine}</text>`);
    lx += 140;
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}

export function formatRate(v: number): string {
  if (v >= 1e6) return `${(v / 1e6).toFixed(v >= 1e7 ? 0 : 1)}M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(v >= 1e4 ? 0 : 1)}k`;
  return v.toFixed(0);
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
