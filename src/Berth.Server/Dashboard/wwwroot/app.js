// Berth dashboard: static page + server-sent events. Every action calls the control plane's /v1 API (the CLI's) with the
// session cookie and the CSRF token from the page.
(function () {
  'use strict';
  const csrf = document.querySelector('meta[name=csrf]').content;
  const view = document.getElementById('view');
  const COLORS = ['#2f6fec', '#1f9d55', '#d64545', '#c98a00', '#8e44ad', '#16a2b8', '#e67e22', '#5d6d7e'];
  let resources = { services: [], replicas: [] };
  let events = [];
  let current = null; // the active view: {name, update(), dispose()}

  // ---- helpers ------------------------------------------------------------------------------------------------
  const esc = s => String(s ?? '').replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  const phase = p => `<span class="phase ${esc(String(p || '').toLowerCase())}">${esc(p)}</span>`;
  const ago = t => { if (!t) return ''; const s = Math.max(0, (Date.now() - new Date(t)) / 1000); return s < 60 ? `${s.toFixed(0)}s` : s < 3600 ? `${(s / 60).toFixed(0)}m` : `${(s / 3600).toFixed(1)}h`; };
  const time = t => t ? new Date(t).toLocaleTimeString([], { hour12: false }) : '';
  const bytes = b => b == null ? '–' : fmtValue(b, 'bytes');
  const ms = v => v == null ? '–' : v >= 1000 ? (v / 1000).toFixed(2) + ' s' : v >= 10 ? v.toFixed(0) + ' ms' : v.toFixed(2) + ' ms';
  const rate = v => v >= 10 ? v.toFixed(0) : v >= 0.1 ? v.toFixed(2) : v > 0 ? v.toFixed(3) : '0';
  const color = name => COLORS[[...String(name)].reduce((a, c) => (a * 31 + c.charCodeAt(0)) >>> 0, 7) % COLORS.length];
  function toast(msg, err) {
    const d = document.createElement('div'); d.textContent = msg; if (err) d.className = 'err';
    document.getElementById('toast').appendChild(d); setTimeout(() => d.remove(), err ? 8000 : 3000);
  }
  async function getJson(url) {
    const r = await fetch(url, { credentials: 'same-origin' });
    if (!r.ok) throw new Error((await r.json().catch(() => ({}))).error || `${r.status} ${r.statusText}`);
    return r.json();
  }
  async function act(method, url, body, done) {
    try {
      const r = await fetch(url, {
        method, credentials: 'same-origin',
        headers: { 'X-Berth-CSRF': csrf, 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const j = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error(j.error || `${r.status} ${r.statusText}`);
      toast(done || `${method} ${url}: ok`);
      return j;
    } catch (e) { toast(e.message, true); return null; }
  }
  function bar(value, limit, text) {
    if (value == null) return '<span class="muted">–</span>';
    const pct = limit ? Math.min(100, 100 * value / limit) : Math.min(100, value);
    return `<span class="bar" title="${esc(text)}"><i class="${pct > 85 ? 'hot' : ''}" style="width:${pct.toFixed(1)}%"></i><span>${esc(text)}</span></span>`;
  }

  // A replica arrives as the API's replica (what `berth ps` reads) and the dashboard's usage beside it; the views read one object.
  const flatReplica = r => Object.assign({}, r.replica, r.usage);

  // ---- live feed ----------------------------------------------------------------------------------------------
  function connect() {
    const live = document.getElementById('live');
    const es = new EventSource('/dashboard/api/stream');
    es.onopen = () => live.classList.remove('off');
    es.onerror = () => live.classList.add('off');
    es.addEventListener('resources', m => {
      const data = JSON.parse(m.data);
      data.replicas = (data.replicas || []).map(flatReplica);
      resources = data;
      if (data.events && data.events.length) { events = events.concat(data.events).slice(-200); }
      if (current && current.update) current.update();
    });
  }

  // ---- resources ----------------------------------------------------------------------------------------------
  function resourcesView() {
    view.innerHTML = `
      <h2>Resources</h2>
      <div class="panel"><table id="services"><thead><tr><th>Service</th><th>Ready</th><th>Runtime</th><th>Revision</th><th>Rollout</th><th>Endpoints</th><th>Limits</th><th>Probes</th><th>Actions</th></tr></thead><tbody></tbody></table></div>
      <div class="panel"><table id="replicas"><thead><tr><th>Replica</th><th>Service</th><th>Phase</th><th>Reason</th><th>Node</th><th>Ports</th><th>Restarts</th><th>Rev</th><th>CPU</th><th>Memory</th><th>Last exit</th><th>Age</th><th></th></tr></thead><tbody></tbody></table></div>
      <div class="panel"><h3>Events</h3><div class="events" id="events"></div></div>`;
    const sbody = view.querySelector('#services tbody'), rbody = view.querySelector('#replicas tbody');
    function update() {
      sync(sbody, resources.services || [], s => s.name, (tr, s) => {
        if (!tr.dataset.built) {
          tr.dataset.built = '1';
          tr.innerHTML = '<td></td>'.repeat(8) + `<td class="actions">
            <input type="number" min="0" value="${s.desired}" aria-label="replicas of ${esc(s.name)}" data-scale>
            <button data-do="scale">Scale</button><button data-do="restart">Restart</button>
            <button data-do="stopstart"></button><span class="sep"></span>
            <button data-do="pause" title="pause the rollout">Pause</button><button data-do="resume" title="resume the rollout">Resume</button><button data-do="undo" class="danger" title="undo the rollout (back to the previous revision)">Undo</button></td>`;
          tr.querySelector('[data-do=scale]').onclick = () => act('POST', `/v1/services/${encodeURIComponent(s.name)}/scale`, { replicas: +tr.querySelector('[data-scale]').value }, `scaling ${s.name} to ${tr.querySelector('[data-scale]').value}`);
          tr.querySelector('[data-do=restart]').onclick = () => act('POST', `/v1/services/${encodeURIComponent(s.name)}/restart`, undefined, `restarting ${s.name}`);
          tr.querySelector('[data-do=stopstart]').onclick = e => act('POST', `/v1/services/${encodeURIComponent(s.name)}/${e.target.dataset.verb}`, undefined, `${e.target.dataset.verb} ${s.name}`);
          tr.querySelector('[data-do=pause]').onclick = () => act('POST', `/v1/services/${encodeURIComponent(s.name)}/rollout/pause`, undefined, `rollout of ${s.name} paused`);
          tr.querySelector('[data-do=resume]').onclick = () => act('POST', `/v1/services/${encodeURIComponent(s.name)}/rollout/resume`, undefined, `rollout of ${s.name} resumed`);
          tr.querySelector('[data-do=undo]').onclick = () => { if (confirm(`Roll ${s.name} back to its previous revision?`)) act('POST', `/v1/services/${encodeURIComponent(s.name)}/rollout/undo`, undefined, `rolling ${s.name} back`); };
        }
        const c = tr.children;
        c[0].innerHTML = `<b>${esc(s.name)}</b>`;
        c[1].innerHTML = `<span data-ready="${s.ready}">${s.ready}/${s.desired}</span>${s.stopped ? ' <span class="phase stopped">stopped</span>' : ''}`;
        c[2].textContent = s.runtime;
        c[3].textContent = s.revision;
        c[4].innerHTML = s.rollout ? `${phase(s.rollout.state)}` : '';
        c[4].title = s.rollout ? s.rollout.message : '';
        c[5].innerHTML = (s.endpoints || []).map(e => `<code>${esc(e.protocol)}:${esc(e.port ?? '')}</code>`).join(' ');
        c[6].innerHTML = `<span class="muted">${esc(s.cpuLimit || '–')} CPU · ${esc(s.memoryLimit || '–')}</span>`;
        c[7].className = 'probes';
        c[7].innerHTML = `<span class="muted">${esc([s.probes.readiness && 'ready: ' + s.probes.readiness, s.probes.liveness && 'live: ' + s.probes.liveness].filter(Boolean).join('; ') || 'none')}</span>`;
        const ss = tr.querySelector('[data-do=stopstart]');
        ss.dataset.verb = s.stopped ? 'start' : 'stop'; ss.textContent = s.stopped ? 'Start' : 'Stop';
      });
      sync(rbody, resources.replicas || [], r => r.id, (tr, r) => {
        if (!tr.dataset.built) { tr.dataset.built = '1'; tr.innerHTML = '<td></td>'.repeat(13); tr.dataset.replica = r.id; }
        const c = tr.children;
        c[0].innerHTML = `<a href="#replica/${encodeURIComponent(r.id)}" class="mono">${esc(r.id)}</a>`;
        c[1].textContent = r.service;
        c[2].innerHTML = phase(r.phase);
        c[3].className = 'wrap muted'; c[3].textContent = r.reason || '';
        c[4].textContent = r.node || '';
        c[5].innerHTML = Object.entries(r.ports || {}).map(([k, v]) => `<code>${esc(k)}:${esc(v)}</code>`).join(' ');
        c[6].innerHTML = `<span data-restarts="${r.restarts}">${r.restarts}</span>`;
        c[7].textContent = r.revision;
        c[8].innerHTML = bar(r.cpuPercent, r.cpuLimitPercent, r.cpuPercent == null ? '' : `${r.cpuPercent.toFixed(1)}%${r.cpuLimitPercent ? ' / ' + r.cpuLimitPercent.toFixed(0) + '%' : ''}`);
        c[9].innerHTML = bar(r.memoryBytes, r.memoryLimitBytes, r.memoryBytes == null ? '' : `${bytes(r.memoryBytes)}${r.memoryLimitBytes ? ' / ' + bytes(r.memoryLimitBytes) : ''}`);
        c[10].textContent = r.lastExitCode ?? '';
        c[11].textContent = ago(r.startedAt);
        c[12].innerHTML = `<a href="#logs?replica=${encodeURIComponent(r.id)}">logs</a>`;
      });
      const ev = view.querySelector('#events');
      ev.innerHTML = events.slice(-100).reverse().map(e => `<div><span class="muted">${time(e.time)}</span> ${phase(e.type)} <b>${esc(e.replica || e.service || '')}</b> ${esc(e.message)}</div>`).join('');
    }
    return { update };
  }

  // Keyed rows: existing rows are updated in place (so an input being typed in survives a push), others added or removed.
  function sync(tbody, items, key, fill) {
    const seen = new Set();
    items.forEach((item, i) => {
      const k = key(item); seen.add(k);
      let tr = tbody.querySelector(`tr[data-key="${CSS.escape(k)}"]`);
      if (!tr) { tr = document.createElement('tr'); tr.dataset.key = k; }
      if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
      fill(tr, item);
    });
    [...tbody.children].forEach(tr => { if (!seen.has(tr.dataset.key)) tr.remove(); });
  }

  // ---- replica detail -----------------------------------------------------------------------------------------
  function replicaView(id) {
    view.innerHTML = `<h2>Replica <span class="mono">${esc(id)}</span></h2><div id="detail" class="empty">loading…</div>`;
    let last = 0;
    async function load() {
      last = Date.now();
      try {
        const d = await getJson(`/dashboard/api/replicas/${encodeURIComponent(id)}`);
        Object.assign(d, flatReplica(d));
        document.getElementById('detail').className = '';
        document.getElementById('detail').innerHTML = `
          <div class="panel"><div class="kv">
            <div>service</div><div>${esc(d.service)}</div><div>phase</div><div>${phase(d.phase)} ${esc(d.reason || '')}</div>
            <div>node</div><div>${esc(d.node || '')}</div><div>ports</div><div>${esc(JSON.stringify(d.ports))}</div>
            <div>pid</div><div>${esc(d.pid ?? '')}</div><div>restarts</div><div>${d.restarts}</div><div>revision</div><div>${d.revision}</div>
            <div>last exit</div><div>${esc(d.lastExitCode ?? '')}</div><div>started</div><div>${esc(d.startedAt || '')}</div><div>ready</div><div>${esc(d.readyAt || '')}</div>
            <div>command</div><div>${esc((d.command || []).join(' '))}</div><div>image</div><div>${esc(d.image || '')}</div>
            <div>limits</div><div>cpu ${esc(d.limits.cpuRequest || '–')} / ${esc(d.limits.cpuLimit || '–')}, memory ${esc(d.limits.memoryRequest || '–')} / ${esc(d.limits.memoryLimit || '–')} (request / limit)</div>
            <div>probes</div><div>${esc(Object.entries(d.probes).filter(([, v]) => v).map(([k, v]) => k + ': ' + v).join('; ') || 'none')}</div>
          </div>
          <p><a href="#logs?replica=${encodeURIComponent(id)}">Logs</a> · <button id="restart">Restart</button> <button id="stop" class="danger">Stop</button></p></div>
          <div class="grid2"><div class="chart" id="cpu"><h4>CPU %</h4><div></div></div><div class="chart" id="mem"><h4>Memory</h4><div></div></div></div>
          <div class="panel"><h3>Environment</h3><div class="kv">${Object.entries(d.env).map(([k, v]) => `<div>${esc(k)}</div><div>${esc(v)}</div>`).join('')}</div></div>
          <div class="panel"><h3>Probe history</h3><div class="events">${d.probeHistory.map(e => `<div><span class="muted">${time(e.time)}</span> ${phase(e.type)} ${esc(e.message)}</div>`).join('') || '<span class="muted">no probe transitions yet</span>'}</div></div>
          <div class="panel"><h3>Events</h3><div class="events">${d.events.slice().reverse().map(e => `<div><span class="muted">${time(e.time)}</span> ${phase(e.type)} ${esc(e.message)}</div>`).join('')}</div></div>`;
        document.getElementById('restart').onclick = () => act('POST', `/v1/replicas/${encodeURIComponent(id)}/restart`, undefined, `restarting ${id}`);
        document.getElementById('stop').onclick = () => act('POST', `/v1/replicas/${encodeURIComponent(id)}/stop`, undefined, `stopping ${id}`);
        const now = Date.now() / 1000;
        lineChart(document.querySelector('#cpu div'), { from: now - 600, to: now, unit: '', series: [{ name: 'cpu %', color: COLORS[0], points: d.stats.map(p => [p.t, p.cpu]) }], limit: d.limits.cpuLimit ? parseFloat(d.limits.cpuLimit) * 100 || undefined : undefined });
        lineChart(document.querySelector('#mem div'), { from: now - 600, to: now, unit: 'bytes', series: [{ name: 'memory', color: COLORS[1], points: d.stats.map(p => [p.t, p.mem]) }] });
      } catch (e) { document.getElementById('detail').textContent = e.message; }
    }
    load();
    return { update() { if (Date.now() - last > 2000) load(); } };
  }

  // ---- logs ---------------------------------------------------------------------------------------------------
  function logsView(params) {
    const replica = params.get('replica') || '', service = params.get('service') || '';
    const services = (resources.services || []).map(s => s.name);
    view.innerHTML = `<h2>Logs</h2>
      <div class="toolbar">
        <select id="src"><option value="">all services</option>${services.map(s => `<option value="service=${esc(s)}" ${s === service ? 'selected' : ''}>service ${esc(s)}</option>`).join('')}
          ${(resources.replicas || []).map(r => `<option value="replica=${esc(r.id)}" ${r.id === replica ? 'selected' : ''}>replica ${esc(r.id)}</option>`).join('')}</select>
        <input id="search" type="search" placeholder="search" aria-label="search logs">
        <select id="level" aria-label="level"><option value="">any level</option><option>error</option><option>warn</option><option>info</option><option>debug</option></select>
        <select id="stream" aria-label="stream"><option value="">stdout + stderr</option><option>stdout</option><option>stderr</option></select>
        <button id="pause">Pause</button><span id="count" class="muted"></span>
        <span id="files"></span>
      </div>
      <div class="logs" id="lines"></div>`;
    if (replica && !(resources.replicas || []).some(r => r.id === replica)) {
      view.querySelector('#src').insertAdjacentHTML('beforeend', `<option value="replica=${esc(replica)}" selected>replica ${esc(replica)}</option>`);
    }
    const box = view.querySelector('#lines'), search = view.querySelector('#search'), level = view.querySelector('#level'), stream = view.querySelector('#stream');
    const lines = []; let paused = false, held = [];
    const LEVELS = { fatal: 0, error: 0, warn: 1, info: 2, debug: 3, trace: 3 };
    const visible = l => (!level.value || l.level === level.value || LEVELS[l.level] < LEVELS[level.value]) && (!stream.value || l.stream === stream.value) && (!search.value || l.text.toLowerCase().includes(search.value.toLowerCase()));
    function row(l) {
      const d = document.createElement('div');
      d.className = `${l.stream} lv-${l.level}`;
      let text = esc(l.text);
      if (search.value) { const q = search.value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'); text = text.replace(new RegExp(esc(q).replace(/&amp;/g, '&amp;'), 'gi'), m => `<mark>${m}</mark>`); }
      d.innerHTML = `<span class="t">${time(l.time)}</span> <span class="r">${esc(l.replica)}</span> ${text}`;
      return d;
    }
    function redraw() {
      box.textContent = '';
      const frag = document.createDocumentFragment();
      lines.filter(visible).slice(-3000).forEach(l => frag.appendChild(row(l)));
      box.appendChild(frag); box.scrollTop = box.scrollHeight; count();
    }
    const count = () => { view.querySelector('#count').textContent = `${lines.length} lines${paused ? ` · paused (${held.length} waiting)` : ''}`; };
    function add(l) {
      lines.push(l); if (lines.length > 20000) lines.splice(0, lines.length - 20000);
      if (visible(l)) { const stick = box.scrollTop + box.clientHeight >= box.scrollHeight - 30; box.appendChild(row(l)); if (box.children.length > 3000) box.firstChild.remove(); if (stick) box.scrollTop = box.scrollHeight; }
    }
    const q = replica ? `replica=${encodeURIComponent(replica)}` : service ? `service=${encodeURIComponent(service)}` : '';
    const es = new EventSource(`/dashboard/api/logs?${q}&tail=500`);
    es.addEventListener('log', m => { const l = JSON.parse(m.data); if (paused) held.push(l); else add(l); count(); });
    search.oninput = level.onchange = stream.onchange = redraw;
    view.querySelector('#pause').onclick = e => { paused = !paused; e.target.textContent = paused ? 'Resume' : 'Pause'; if (!paused) { held.forEach(add); held = []; } count(); };
    view.querySelector('#src').onchange = e => { location.hash = '#logs' + (e.target.value ? '?' + e.target.value : ''); };
    if (replica) {
      getJson(`/dashboard/api/log-files?replica=${encodeURIComponent(replica)}`).then(files => {
        view.querySelector('#files').innerHTML = files.length ? 'files: ' + files.map(f => `<a href="/dashboard/api/log-file?replica=${encodeURIComponent(replica)}&name=${encodeURIComponent(f.name)}" target="_blank">${esc(f.name)}</a> <span class="muted">(${bytes(f.bytes)})</span>`).join(' ') : '';
      }).catch(() => {});
    }
    return { dispose() { es.close(); } };
  }

  // ---- service graph ------------------------------------------------------------------------------------------
  function graphView() {
    view.innerHTML = `<h2>Service graph</h2><div class="toolbar"><label>window <select id="win"><option value="60">1 min</option><option value="300">5 min</option><option value="900">15 min</option><option value="3600">1 h</option></select></label><span class="muted">edges: requests through the mesh (req/s · error rate · p99); dashed: depends_on without traffic seen</span></div><div class="panel"><svg class="graph" id="g" width="100%" height="520"></svg></div><div class="panel"><table id="edges"><thead><tr><th>From</th><th>To</th><th>req/s</th><th>errors</th><th>p99</th><th>requests</th></tr></thead><tbody></tbody></table></div>`;
    let timer;
    async function load() {
      let g;
      try { g = await getJson(`/dashboard/api/graph?window=${view.querySelector('#win').value}`); } catch (e) { return; }
      drawGraph(view.querySelector('#g'), g);
      view.querySelector('#edges tbody').innerHTML = g.edges.map(e => `<tr data-edge="${esc(e.from)}->${esc(e.to)}"><td>${esc(e.from)}</td><td>${esc(e.to)}</td><td class="rps">${rate(e.rps)}</td><td>${(e.errorRate * 100).toFixed(1)}%</td><td>${ms(e.p99Ms)}</td><td>${e.requests}</td></tr>`).join('') || '<tr><td colspan="6" class="empty">no requests through the mesh in this window</td></tr>';
    }
    view.querySelector('#win').onchange = load;
    load(); timer = setInterval(load, 2000);
    return { dispose() { clearInterval(timer); } };
  }
  function drawGraph(svg, g) {
    const names = g.nodes.map(n => n.name);
    const out = {}; names.forEach(n => out[n] = new Set());
    const links = g.edges.map(e => [e.from, e.to]).concat((g.dependsOn || []).map(d => [d.from, d.to]));
    links.forEach(([a, b]) => { if (out[a]) out[a].add(b); });
    // Layers: longest path from the sources (callers first), as a Sugiyama-style layout without crossings minimisation.
    const depth = {}; names.forEach(n => depth[n] = 0);
    for (let i = 0; i < names.length; i++) links.forEach(([a, b]) => { if (depth[a] !== undefined && depth[b] !== undefined && depth[b] < depth[a] + 1 && depth[a] + 1 < names.length) depth[b] = depth[a] + 1; });
    const layers = {}; names.forEach(n => (layers[depth[n]] = layers[depth[n]] || []).push(n));
    const W = Math.max(svg.clientWidth || 900, 600), H = 520, NW = 150, NH = 54;
    const cols = Object.keys(layers).length, pos = {};
    Object.entries(layers).forEach(([d, list]) => list.forEach((n, i) => { pos[n] = { x: 40 + (W - NW - 80) * (cols > 1 ? d / (cols - 1) : 0.5), y: (H / (list.length + 1)) * (i + 1) - NH / 2 }; }));
    let s = '<defs><marker id="arr" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#7c8db5"/></marker></defs>';
    const seen = new Set(g.edges.map(e => e.from + '>' + e.to));
    (g.dependsOn || []).filter(d => !seen.has(d.from + '>' + d.to) && pos[d.from] && pos[d.to]).forEach(d => {
      const a = pos[d.from], b = pos[d.to];
      s += `<path class="edge dep" d="M${a.x + NW},${a.y + NH / 2} L${b.x},${b.y + NH / 2}" marker-end="url(#arr)"/>`;
    });
    g.edges.forEach(e => {
      const a = pos[e.from], b = pos[e.to]; if (!a || !b) return;
      const x1 = a.x + NW, y1 = a.y + NH / 2, x2 = b.x, y2 = b.y + NH / 2;
      s += `<path class="edge ${e.errorRate > 0.05 ? 'err' : ''}" d="M${x1},${y1} C${(x1 + x2) / 2},${y1} ${(x1 + x2) / 2},${y2} ${x2},${y2}" marker-end="url(#arr)"/>`;
      s += `<text class="elabel" x="${(x1 + x2) / 2}" y="${(y1 + y2) / 2 - 6}" text-anchor="middle" data-edge="${esc(e.from)}->${esc(e.to)}">${rate(e.rps)} req/s · ${(e.errorRate * 100).toFixed(1)}% · p99 ${ms(e.p99Ms)}</text>`;
    });
    g.nodes.forEach(n => {
      const p = pos[n.name]; const bad = n.ejected.length || n.openBreakers.length;
      s += `<g class="node ${n.isService ? '' : 'external'} ${bad ? 'bad' : ''}" transform="translate(${p.x},${p.y})" data-node="${esc(n.name)}"><rect width="${NW}" height="${NH}" rx="8"/>
        <text x="10" y="20" font-weight="600">${esc(n.name)}${n.protocol === 'tcp' ? ' (tcp)' : ''}</text>
        <text x="10" y="38" fill="#667">${n.isService ? `${n.ready}/${n.replicas} ready` : 'outside the app'}${n.ejected.length ? ` · ${n.ejected.length} ejected` : ''}${n.openBreakers.length ? ` · ${n.openBreakers.length} open` : ''}</text></g>`;
    });
    svg.innerHTML = s;
  }

  // ---- metrics ------------------------------------------------------------------------------------------------
  function metricsView(params) {
    const services = (resources.services || []).map(s => s.name);
    const service = params.get('service') || services[0] || '';
    view.innerHTML = `<h2>Metrics</h2><div class="toolbar"><select id="svc">${services.map(s => `<option ${s === service ? 'selected' : ''}>${esc(s)}</option>`).join('')}</select>
      <select id="range"><option value="60">last 1 min</option><option value="300" selected>last 5 min</option><option value="900">last 15 min</option><option value="3600">last 1 h</option></select></div>
      <div class="grid2" id="charts"></div>`;
    const names = [['rps', 'Requests/s'], ['err', 'Error rate'], ['lat', 'Latency (ms)'], ['retries', 'Retries'], ['mesh', 'Ejected endpoints · open breakers'], ['cpu', 'CPU % per replica'], ['mem', 'Memory per replica']];
    const charts = view.querySelector('#charts');
    charts.innerHTML = names.map(([k, t]) => `<div class="chart" id="c-${k}"><h4>${t}</h4><div></div></div>`).join('') + '<div id="app-metrics" style="display:contents"></div>';
    let timer;
    async function load() {
      const svc = view.querySelector('#svc').value; if (!svc) return;
      let m; try { m = await getJson(`/dashboard/api/metrics?service=${encodeURIComponent(svc)}&range=${view.querySelector('#range').value}`); } catch (e) { return; }
      const to = Date.now() / 1000, from = to - m.range;
      const pts = f => m.requests.map(p => [p.time, f(p)]);
      const draw = (k, o) => lineChart(view.querySelector(`#c-${k} div`), Object.assign({ from, to }, o));
      draw('rps', { series: [{ name: 'req/s', color: COLORS[0], points: pts(p => p.rps) }] });
      draw('err', { unit: '%', series: [{ name: 'errors', color: COLORS[2], points: pts(p => p.errorRate) }] });
      draw('lat', { series: [{ name: 'p50', color: COLORS[1], points: pts(p => p.p50) }, { name: 'p95', color: COLORS[3], points: pts(p => p.p95) }, { name: 'p99', color: COLORS[2], points: pts(p => p.p99) }] });
      draw('retries', { series: [{ name: 'retries', color: COLORS[4], points: pts(p => p.retries) }] });
      draw('mesh', { series: [{ name: 'ejected', color: COLORS[2], points: pts(p => p.ejected) }, { name: 'open breakers', color: COLORS[3], points: pts(p => p.openBreakers) }] });
      draw('cpu', { series: m.replicas.map((r, i) => ({ name: r.id, color: COLORS[i % COLORS.length], points: r.points.map(p => [p.t, p.cpu]) })) });
      draw('mem', { unit: 'bytes', series: m.replicas.map((r, i) => ({ name: r.id, color: COLORS[i % COLORS.length], points: r.points.map(p => [p.t, p.mem]) })) });
      const am = view.querySelector('#app-metrics');
      am.innerHTML = m.appMetrics.slice(0, 12).map((x, i) => `<div class="chart" id="am-${i}"><h4>${esc(x.name)} <span class="muted">(${esc(x.type)}${x.unit ? ', ' + esc(x.unit) : ''}, from the app)</span></h4><div></div></div>`).join('');
      m.appMetrics.slice(0, 12).forEach((x, i) => lineChart(am.querySelector(`#am-${i} div`), { from, to, series: [{ name: x.name, color: COLORS[i % COLORS.length], points: x.points.map(p => [p.t, p.v]) }] }));
    }
    view.querySelector('#svc').onchange = view.querySelector('#range').onchange = load;
    load(); timer = setInterval(load, 5000);
    return { dispose() { clearInterval(timer); } };
  }

  // ---- traces -------------------------------------------------------------------------------------------------
  function tracesView(params) {
    const services = (resources.services || []).map(s => s.name);
    view.innerHTML = `<h2>Traces</h2><div class="toolbar">
      <select id="svc"><option value="">any service</option>${services.map(s => `<option ${s === params.get('service') ? 'selected' : ''}>${esc(s)}</option>`).join('')}</select>
      <select id="status"><option value="">any status</option><option value="error">errors</option><option value="ok">ok</option></select>
      <input id="min" type="number" min="0" placeholder="min ms" style="width:80px" aria-label="minimum duration in ms"><button id="go">Search</button></div>
      <div class="panel"><table id="traces"><thead><tr><th>Started</th><th>Trace</th><th>Services</th><th>Spans</th><th>Errors</th><th>Duration</th></tr></thead><tbody></tbody></table></div>`;
    let timer;
    async function load() {
      const q = new URLSearchParams({ service: view.querySelector('#svc').value, status: view.querySelector('#status').value, minMs: view.querySelector('#min').value });
      let list; try { list = await getJson('/dashboard/api/traces?' + q); } catch (e) { return; }
      view.querySelector('#traces tbody').innerHTML = list.map(t => `<tr data-trace="${esc(t.traceId)}"><td>${time(t.start)}</td><td><a href="#trace/${esc(t.traceId)}">${esc(t.name)}</a> <span class="muted mono">${esc(t.traceId.slice(0, 8))}</span></td>
        <td>${t.services.map(s => `<span class="svc" style="background:${color(s)}">${esc(s)}</span>`).join('')}</td><td>${t.spans}</td><td>${t.errors ? `<span class="phase error">${t.errors}</span>` : '0'}</td><td>${ms(t.durationMs)}</td></tr>`).join('') || '<tr><td colspan="6" class="empty">no traces yet: send a request through the mesh, or instrument an app with OpenTelemetry (replicas get OTEL_EXPORTER_OTLP_ENDPOINT)</td></tr>';
    }
    view.querySelector('#go').onclick = load;
    load(); timer = setInterval(load, 3000);
    return { dispose() { clearInterval(timer); } };
  }
  function traceView(id) {
    view.innerHTML = `<h2>Trace <span class="mono">${esc(id)}</span></h2><div class="panel"><div class="wf" id="wf"></div></div><div class="panel" id="attrs"><span class="muted">click a span for its attributes</span></div>`;
    let timer;
    async function load() {
      let spans; try { spans = await getJson(`/dashboard/api/traces/${encodeURIComponent(id)}`); } catch (e) { view.querySelector('#wf').textContent = e.message; return; }
      const byId = {}; spans.forEach(s => byId[s.spanId] = s);
      const kids = {}; const roots = [];
      spans.forEach(s => { if (s.parentSpanId && byId[s.parentSpanId]) (kids[s.parentSpanId] = kids[s.parentSpanId] || []).push(s); else roots.push(s); });
      const t0 = Math.min(...spans.map(s => new Date(s.start).getTime())), t1 = Math.max(...spans.map(s => new Date(s.start).getTime() + s.durationMs));
      const total = Math.max(1, t1 - t0); const rows = [];
      const walk = (s, d) => { rows.push([s, d]); (kids[s.spanId] || []).sort((a, b) => new Date(a.start) - new Date(b.start)).forEach(k => walk(k, d + 1)); };
      roots.sort((a, b) => new Date(a.start) - new Date(b.start)).forEach(r => walk(r, 0));
      view.querySelector('#wf').innerHTML = rows.map(([s, d]) => {
        const left = 100 * (new Date(s.start).getTime() - t0) / total, width = Math.max(0.3, 100 * s.durationMs / total);
        return `<div class="row" data-span="${esc(s.spanId)}" data-service="${esc(s.service)}" data-source="${esc(s.source)}"><div class="name" style="padding-left:${4 + d * 14}px"><span class="svc" style="background:${s.source === 'mesh' ? '#9b7be0' : color(s.service)}">${s.source === 'mesh' ? 'mesh → ' + esc(s.service) : esc(s.service)}</span>${esc(s.name)}</div>
          <div class="track"><div class="span ${s.source === 'mesh' ? 'mesh' : ''} ${s.error ? 'err' : ''}" style="left:${left}%;width:${width}%"></div></div><div class="dur">${ms(s.durationMs)}</div></div>`;
      }).join('');
      view.querySelectorAll('.wf .row').forEach(r => r.onclick = () => {
        const s = byId[r.dataset.span];
        view.querySelector('#attrs').innerHTML = `<h3>${esc(s.service)} · ${esc(s.name)}</h3><div class="kv"><div>kind</div><div>${esc(s.kind)}</div><div>replica</div><div>${esc(s.replica || '')}</div><div>span</div><div>${esc(s.spanId)}</div><div>parent</div><div>${esc(s.parentSpanId || '')}</div><div>status</div><div>${s.error ? 'error ' : 'ok '}${esc(s.status || '')}</div>${Object.entries(s.attributes).map(([k, v]) => `<div>${esc(k)}</div><div>${esc(v)}</div>`).join('')}</div>`;
      });
    }
    load(); timer = setInterval(load, 3000);
    return { dispose() { clearInterval(timer); } };
  }

  // ---- rollouts -----------------------------------------------------------------------------------------------
  function rolloutsView() {
    view.innerHTML = '<h2>Rollouts</h2><div id="ro" class="empty">loading…</div>';
    let timer;
    async function load() {
      let list; try { list = await getJson('/dashboard/api/rollouts'); } catch (e) { return; }
      const ro = view.querySelector('#ro'); ro.className = '';
      ro.innerHTML = list.map(r => `<div class="panel"><h3>${esc(r.service)} ${phase(r.status.state)} <span class="muted">revision ${r.status.revision}</span></h3>
        <p class="muted">${esc(r.status.message)}</p>
        <div class="actions"><button data-a="pause" data-s="${esc(r.service)}">Pause</button><button data-a="resume" data-s="${esc(r.service)}">Resume</button><button data-a="undo" data-s="${esc(r.service)}" class="danger">Undo</button></div>
        <h3>History</h3><table><thead><tr><th>Revision</th><th>Created</th><th>Cause</th><th>Image / command</th><th></th></tr></thead><tbody>
        ${r.history.map(h => `<tr><td>${h.revision}${h.current ? ' <span class="phase ready">current</span>' : ''}</td><td>${esc(new Date(h.createdAt).toLocaleString())}</td><td class="wrap">${esc(h.cause)}</td><td class="mono wrap">${esc(h.image || '')} ${esc((h.command || []).join(' '))}</td><td>${h.current ? '' : `<button data-a="undo-to" data-s="${esc(r.service)}" data-r="${h.revision}">Roll back to this</button>`}</td></tr>`).join('')}</tbody></table>
        <h3>Why (events)</h3><div class="events">${r.events.slice().reverse().map(e => `<div><span class="muted">${time(e.time)}</span> ${phase(e.type)} ${esc(e.message)}</div>`).join('') || '<span class="muted">none</span>'}</div></div>`).join('');
      ro.querySelectorAll('button[data-a]').forEach(b => b.onclick = () => {
        const s = encodeURIComponent(b.dataset.s);
        if (b.dataset.a === 'undo-to') act('POST', `/v1/services/${s}/rollout/undo`, { toRevision: +b.dataset.r }, `rolling ${b.dataset.s} back to ${b.dataset.r}`);
        else act('POST', `/v1/services/${s}/rollout/${b.dataset.a}`, undefined, `${b.dataset.a}: ${b.dataset.s}`);
      });
    }
    load(); timer = setInterval(load, 3000);
    return { dispose() { clearInterval(timer); } };
  }

  // ---- pipelines ----------------------------------------------------------------------------------------------
  function pipelinesView(params) {
    const run = params.get('run');
    view.innerHTML = '<h2>Pipelines</h2><div class="panel"><table id="runs"><thead><tr><th>Run</th><th>Pipeline</th><th>Status</th><th>Trigger</th><th>Started</th><th>Duration</th><th></th></tr></thead><tbody></tbody></table></div><div id="run"></div>';
    let timer;
    async function load() {
      let runs; try { runs = await getJson('/dashboard/api/pipelines'); } catch (e) { return; }
      view.querySelector('#runs tbody').innerHTML = runs.map(r => `<tr><td><a href="#pipelines?run=${r.id}">#${r.id}</a></td><td>${esc(r.pipeline)}</td><td>${phase(r.status)}</td><td>${esc(r.trigger)}</td><td>${esc(new Date(r.created).toLocaleString())}</td><td>${r.durationMs != null ? ms(r.durationMs) : ''}</td>
        <td>${['queued', 'running', 'waiting'].includes(r.status) ? `<button data-cancel="${r.id}" class="danger">Cancel</button>` : ''}</td></tr>`).join('') || '<tr><td colspan="7" class="empty">no pipeline runs yet: berth pipeline run NAME</td></tr>';
      view.querySelectorAll('[data-cancel]').forEach(b => b.onclick = () => act('POST', `/v1/pipelines/runs/${b.dataset.cancel}/cancel`, undefined, `cancelling run ${b.dataset.cancel}`));
      if (run) {
        let d; try { d = await getJson(`/dashboard/api/pipelines/${encodeURIComponent(run)}`); } catch (e) { return; }
        // The job graph from needs: a job's column is the longest chain of needs before it; an edge per need, to every matrix instance.
        const instances = {}; d.jobs.forEach(j => (instances[j.job] = instances[j.job] || []).push(j));
        const depth = {};
        const stageOf = id => {
          if (depth[id] !== undefined) return depth[id];
          depth[id] = 0; // a cycle cannot be parsed; this only stops the walk
          return depth[id] = Math.max(0, ...((instances[id] || [])[0]?.needs || []).filter(n => instances[n]).map(n => stageOf(n) + 1));
        };
        const stages = []; d.jobs.forEach(j => (stages[stageOf(j.job)] = stages[stageOf(j.job)] || []).push(j));
        view.querySelector('#run').innerHTML = `<div class="panel"><h3>Run #${d.run.id} · ${esc(d.run.pipeline)} ${phase(d.run.status)}</h3>
          <div class="dag" id="dag"><svg class="dag-edges" xmlns="http://www.w3.org/2000/svg"></svg>${stages.map((jobs, i) => `<div class="stage" data-stage="${i}">${(jobs || []).map(j => `<div class="job" data-job="${esc(j.key)}" data-id="${esc(j.job)}" data-needs="${esc((j.needs || []).join(','))}"><b>${esc(j.key)}</b><br>${phase(j.status)}<div class="muted">${esc(j.message || '')}</div>${j.status === 'waiting' ? `<button data-approve="${esc(j.key)}" class="primary">Approve</button>` : ''}</div>`).join('')}</div>`).join('')}</div>
          <h3>Steps</h3><table><thead><tr><th>Job</th><th>#</th><th>Step</th><th>Status</th><th>Exit</th><th>Summary</th></tr></thead><tbody>${d.steps.map(s => `<tr><td>${esc(s.job)}</td><td>${s.index}</td><td>${esc(s.name)}</td><td>${phase(s.status)}</td><td>${esc(s.exitCode ?? '')}</td><td class="wrap">${esc(s.summary)}</td></tr>`).join('')}</tbody></table>
          <h3>Step logs</h3><div class="logs" style="height:30vh">${d.logs.map(l => `<div class="${esc(l.stream)}"><span class="r">${esc(l.job)}#${l.step}</span> ${esc(l.text)}</div>`).join('')}</div></div>`;
        view.querySelectorAll('[data-approve]').forEach(b => b.onclick = () => act('POST', `/v1/pipelines/runs/${encodeURIComponent(run)}/approve/${encodeURIComponent(b.dataset.approve)}`, undefined, `approved ${b.dataset.approve}`));
        drawNeeds(view.querySelector('#dag'));
      }
    }
    load(); timer = setInterval(load, 3000);
    return { dispose() { clearInterval(timer); } };
  }

  // ---- kubernetes ---------------------------------------------------------------------------------------------
  // The running spec on the cluster of the control plane's kubeconfig: `berth k8s status` (live state, drift) and `berth k8s diff`.
  function kubernetesView(params) {
    view.innerHTML = `<h2>Kubernetes</h2><div class="toolbar">
      <input id="k-context" placeholder="context (kubeconfig's current)" aria-label="kubeconfig context" value="${esc(params.get('context') || '')}">
      <input id="k-ns" placeholder="namespace (context's)" aria-label="namespace" value="${esc(params.get('namespace') || '')}">
      <select id="k-mesh" aria-label="mesh"><option value="none">plain Kubernetes</option><option value="istio" ${params.get('mesh') === 'istio' ? 'selected' : ''}>with Istio</option></select>
      <button id="k-go">Refresh</button><span id="k-where" class="muted"></span></div>
      <div id="k8s" class="empty">reading the cluster…</div>`;
    let timer, busy = false;
    async function load() {
      if (busy) return; busy = true;
      const q = new URLSearchParams({ context: view.querySelector('#k-context').value, namespace: view.querySelector('#k-ns').value, mesh: view.querySelector('#k-mesh').value });
      let r;
      try { r = await getJson('/dashboard/api/kubernetes?' + q); } catch (e) { view.querySelector('#k8s').textContent = e.message; busy = false; return; }
      busy = false;
      const box = view.querySelector('#k8s'); if (!box) return;
      view.querySelector('#k-where').textContent = r.cluster ? `cluster ${r.cluster}${r.context ? ' (context ' + r.context + ')' : ''}, namespace ${r.namespace} · read ${new Date().toLocaleTimeString([], { hour12: false })}` : '';
      box.className = '';
      const diffLines = d => d.split('\n').map(l => `<div class="${l.startsWith('+++') || l.startsWith('---') ? 'h' : l.startsWith('@@') ? 'at' : l.startsWith('+') ? 'add' : l.startsWith('-') ? 'del' : ''}">${esc(l)}</div>`).join('');
      box.innerHTML = (r.error ? `<div class="panel" id="k-error"><span class="phase error">cannot read the cluster</span> ${esc(r.error)}</div>` : '') +
        (r.status ? `<div class="panel"><h3>Live state</h3><table id="k-status"><thead><tr><th>Object</th><th>State</th><th>Detail</th></tr></thead><tbody>
          ${r.status.map(o => `<tr data-object="${esc(o.object)}"><td class="mono">${esc(o.object)}</td><td>${o.healthy ? '<span class="phase ready">ok</span>' : '<span class="phase not-ready">not ready</span>'}</td><td class="wrap state">${esc(o.state)}</td></tr>`).join('') || '<tr><td colspan="3" class="empty">no workloads</td></tr>'}</tbody></table></div>` : '') +
        (r.drift ? `<div class="panel"><h3>Drift <span class="muted">fields another manager changed since berth applied them</span></h3><table id="k-drift"><thead><tr><th>Object</th><th>Manager</th><th>Operation</th><th>When</th><th>Fields</th></tr></thead><tbody>
          ${r.drift.map(x => `<tr data-object="${esc(x.object)}"><td class="mono">${esc(x.object)}</td><td>${esc(x.manager)}</td><td>${esc(x.operation)}</td><td>${esc(x.time || '')}</td><td class="wrap mono fields">${esc(x.fields.join(', '))}</td></tr>`).join('') || '<tr><td colspan="5" class="empty">no drift: no other manager changed these objects since berth applied them</td></tr>'}</tbody></table></div>` : '') +
        (r.diff ? `<div class="panel"><h3>Diff <span class="muted" id="k-summary">${r.changed ? `apply would change ${r.changed} of ${r.objects} objects` : 'apply would change nothing'}</span></h3>
          ${r.diff.map(o => `<div class="k-object" data-object="${esc(o.object)}"><h4 class="mono">${esc(o.object)}</h4>${o.error ? `<p class="phase error">${esc(o.error)}</p>` : ''}${o.diff ? `<div class="diff">${diffLines(o.diff)}</div>` : ''}</div>`).join('')}
          ${r.prune.length ? `<h3>Not in the spec any more <span class="muted">apply --prune would remove them</span></h3><ul id="k-prune">${r.prune.map(o => `<li class="mono">${esc(o.object)}</li>`).join('')}</ul>` : ''}</div>` : '');
    }
    view.querySelector('#k-go').onclick = load;
    load(); timer = setInterval(load, 10000);
    return { dispose() { clearInterval(timer); } };
  }

  // Edges of the job graph, drawn over the laid-out boxes: from the right of each needed job to the left of the job that needs it.
  function drawNeeds(dag) {
    const svg = dag.querySelector('svg.dag-edges'), box = dag.getBoundingClientRect();
    svg.setAttribute('width', dag.scrollWidth); svg.setAttribute('height', dag.scrollHeight);
    const at = (el, side) => { const r = el.getBoundingClientRect(); return [(side === 'right' ? r.right : r.left) - box.left + dag.scrollLeft, r.top + r.height / 2 - box.top + dag.scrollTop]; };
    let paths = '<defs><marker id="dag-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#7c8db5"/></marker></defs>';
    dag.querySelectorAll('.job').forEach(to => (to.dataset.needs ? to.dataset.needs.split(',') : []).forEach(id => dag.querySelectorAll(`.job[data-id="${CSS.escape(id)}"]`).forEach(from => {
      const [x1, y1] = at(from, 'right'), [x2, y2] = at(to, 'left'), dx = Math.max(12, (x2 - x1) / 2);
      paths += `<path class="dag-edge" data-edge="${esc(from.dataset.job)}->${esc(to.dataset.job)}" d="M${x1.toFixed(1)},${y1.toFixed(1)} C${(x1 + dx).toFixed(1)},${y1.toFixed(1)} ${(x2 - dx).toFixed(1)},${y2.toFixed(1)} ${x2.toFixed(1)},${y2.toFixed(1)}" marker-end="url(#dag-arrow)"/>`;
    })));
    svg.innerHTML = paths;
  }

  // ---- router -------------------------------------------------------------------------------------------------
  function route() {
    if (current && current.dispose) current.dispose();
    const hash = location.hash.slice(1) || 'resources';
    const [path, query] = hash.split('?');
    const params = new URLSearchParams(query || '');
    const [name, arg] = path.split('/');
    document.querySelectorAll('#nav a').forEach(a => a.classList.toggle('active', a.getAttribute('href') === '#' + (name === 'replica' ? 'resources' : name === 'trace' ? 'traces' : name)));
    const views = {
      resources: () => resourcesView(), replica: () => replicaView(decodeURIComponent(arg)), logs: () => logsView(params), graph: () => graphView(),
      metrics: () => metricsView(params), traces: () => tracesView(params), trace: () => traceView(decodeURIComponent(arg)), rollouts: () => rolloutsView(), pipelines: () => pipelinesView(params), kubernetes: () => kubernetesView(params),
    };
    current = (views[name] || views.resources)();
    if (current && current.update) current.update();
  }
  window.addEventListener('hashchange', route);
  connect();
  route();
})();
