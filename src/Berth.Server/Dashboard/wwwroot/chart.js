// A small SVG line chart: enough for the metrics view, no dependency. lineChart(el, {series:[{name, color, points:[[t, v]]}], unit, max})
(function () {
  const NS = 'http://www.w3.org/2000/svg';
  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function fmt(v, unit) {
    if (unit === 'bytes') {
      if (v >= 1 << 30) return (v / (1 << 30)).toFixed(1) + 'Gi';
      if (v >= 1 << 20) return (v / (1 << 20)).toFixed(0) + 'Mi';
      if (v >= 1 << 10) return (v / (1 << 10)).toFixed(0) + 'Ki';
      return v.toFixed(0);
    }
    if (unit === '%') return (v * 100).toFixed(v < 0.1 ? 1 : 0) + '%';
    if (Math.abs(v) >= 100) return v.toFixed(0);
    if (Math.abs(v) >= 1) return v.toFixed(1);
    return v.toFixed(2);
  }
  window.lineChart = function (container, opts) {
    container.textContent = '';
    const W = 600, H = 170, L = 48, R = 8, T = 8, B = 20;
    const svg = el('svg', { viewBox: `0 0 ${W} ${H}` }, container);
    const all = opts.series.flatMap(s => s.points);
    const t0 = opts.from, t1 = opts.to;
    let max = Math.max(opts.max || 0, ...all.map(p => p[1]), 0);
    if (opts.limit) max = Math.max(max, opts.limit);
    if (max === 0) max = 1;
    max *= 1.1;
    const x = t => L + (W - L - R) * (t - t0) / Math.max(1, t1 - t0);
    const y = v => T + (H - T - B) * (1 - v / max);
    for (let i = 0; i <= 4; i++) {
      const v = max * i / 4, yy = y(v);
      el('line', { x1: L, x2: W - R, y1: yy, y2: yy, stroke: '#eef0f4' }, svg);
      const tx = el('text', { x: L - 4, y: yy + 4, 'text-anchor': 'end', 'font-size': 10, fill: '#889' }, svg);
      tx.textContent = fmt(v, opts.unit);
    }
    for (let i = 0; i <= 4; i++) {
      const t = t0 + (t1 - t0) * i / 4;
      const tx = el('text', { x: x(t), y: H - 5, 'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle', 'font-size': 10, fill: '#889' }, svg);
      tx.textContent = new Date(t * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
    }
    if (opts.limit) {
      el('line', { x1: L, x2: W - R, y1: y(opts.limit), y2: y(opts.limit), stroke: '#d64545', 'stroke-dasharray': '4 3' }, svg);
    }
    for (const s of opts.series) {
      if (!s.points.length) continue;
      const d = s.points.map((p, i) => (i ? 'L' : 'M') + x(p[0]).toFixed(1) + ' ' + y(p[1]).toFixed(1)).join(' ');
      el('path', { d, fill: 'none', stroke: s.color, 'stroke-width': 1.6, 'vector-effect': 'non-scaling-stroke' }, svg);
    }
    const legend = document.createElement('div');
    legend.className = 'legend';
    for (const s of opts.series) {
      const last = s.points.length ? s.points[s.points.length - 1][1] : 0;
      const item = document.createElement('span');
      const sw = document.createElement('i'); sw.style.background = s.color;
      item.appendChild(sw);
      item.appendChild(document.createTextNode(`${s.name} ${fmt(last, opts.unit)}`));
      legend.appendChild(item);
    }
    if (opts.limit) { const l = document.createElement('span'); l.textContent = `limit ${fmt(opts.limit, opts.unit)}`; legend.appendChild(l); }
    container.appendChild(legend);
  };
  window.fmtValue = fmt;
})();
