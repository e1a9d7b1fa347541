// Switchyard's dashboard. Plain JS, no dependencies: it reads the gateway's own JSON APIs with
// the key the operator typed in (kept in sessionStorage, sent only as `Authorization: Bearer`)
// and draws its charts as SVG. Data is always put in the page with textContent, never as HTML.
'use strict';

(function () {
  const KEY = 'switchyard.key';
  const SVG = 'http://www.w3.org/2000/svg';
  const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#65a30d'];
  const $ = (sel) => document.querySelector(sel);
  let trafficWindow = '1h';

  // ------------------------------------------------------------------ API
  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(path) {
    const key = sessionStorage.getItem(KEY);
    let response;
    try {
      response = await fetch(path, { headers: { Authorization: 'Bearer ' + key }, cache: 'no-store' });
    } catch (e) {
      throw new ApiError(0, 'the gateway did not answer (' + e.message + ')');
    }
    let body = null;
    try { body = await response.json(); } catch (_) { /* not JSON */ }
    if (!response.ok) {
      const detail = body && body.error && body.error.message ? body.error.message : response.statusText;
      throw new ApiError(response.status, detail);
    }
    return body;
  }

  function loginMessage(error) {
    if (error.status === 401) return 'That key was not accepted (401): check it and try again.';
    if (error.status === 403) return 'That key is valid but may not read the dashboard (403): use the master key or a proxy_admin / proxy_admin_viewer key.';
    return 'Could not sign in: ' + error.message;
  }

  // ------------------------------------------------------------------ helpers
  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }

  function fmt(value, digits) {
    if (value === null || value === undefined || Number.isNaN(value)) return '–';
    if (typeof value !== 'number') return String(value);
    return value.toLocaleString('en-US', { maximumFractionDigits: digits === undefined ? 2 : digits });
  }
  const pct = (v) => (v === null || v === undefined ? '–' : (v * 100).toFixed(1) + '%');
  const usd = (v) => (v === null || v === undefined ? '–' : Number(v).toFixed(6).replace(/0{1,4}$/, ''));

  function row(cells) {
    const tr = el('tr');
    for (const cell of cells) {
      if (cell instanceof Node) { const td = el('td'); td.appendChild(cell); tr.appendChild(td); continue; }
      const numeric = typeof cell === 'object' && cell !== null && 'num' in cell;
      tr.appendChild(el('td', numeric ? { class: 'num' } : {}, numeric ? cell.num : cell));
    }
    return tr;
  }

  function fill(tbody, rows, emptyText, columns) {
    tbody.replaceChildren();
    if (!rows.length) {
      const td = el('td', { colspan: columns, class: 'muted' }, emptyText);
      const tr = el('tr'); tr.appendChild(td); tbody.appendChild(tr);
      return;
    }
    for (const r of rows) tbody.appendChild(r);
  }

  function day(date) { return date.toISOString().slice(0, 10); }

  // ------------------------------------------------------------------ charts
  // A line chart: `series` is [{name, points: [{t, v}]}]; time on x, value on y.
  function lineChart(container, series, opts) {
    const width = 460, height = 200, left = 52, right = 10, top = 10, bottom = 26;
    const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'line-chart', role: 'img' });
    const all = series.flatMap((s) => s.points.filter((p) => p.v !== null));
    container.replaceChildren(root);
    if (!series.length || !all.length) {
      const t = svg('text', { x: width / 2, y: height / 2, 'text-anchor': 'middle', class: 'empty' });
      t.textContent = 'no requests in this window';
      root.appendChild(t);
      return;
    }
    const ts = series[0].points.map((p) => p.t);
    const t0 = Math.min(...ts), t1 = Math.max(...ts);
    let vmax = Math.max(...all.map((p) => p.v));
    if (opts && opts.maxAtLeast) vmax = Math.max(vmax, opts.maxAtLeast);
    if (vmax <= 0) vmax = 1;
    const x = (t) => left + ((t - t0) / Math.max(1, t1 - t0)) * (width - left - right);
    const y = (v) => top + (1 - v / vmax) * (height - top - bottom);
    for (let i = 0; i <= 4; i++) {
      const v = (vmax * i) / 4;
      root.appendChild(svg('line', { x1: left, x2: width - right, y1: y(v), y2: y(v), class: 'grid' }));
      const label = svg('text', { x: left - 4, y: y(v) + 3, 'text-anchor': 'end', class: 'axis' });
      label.textContent = opts && opts.percent ? (v * 100).toFixed(v * 100 < 10 ? 1 : 0) + '%' : fmt(v, v < 10 ? 2 : 0);
      root.appendChild(label);
    }
    for (const [i, t] of [[0, t0], [1, t1]]) {
      const label = svg('text', { x: x(t), y: height - 8, 'text-anchor': i ? 'end' : 'start', class: 'axis' });
      label.textContent = new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
      root.appendChild(label);
    }
    series.forEach((s, i) => {
      let d = '';
      let pen = false;
      for (const p of s.points) {
        if (p.v === null) { pen = false; continue; }
        d += (pen ? 'L' : 'M') + x(p.t).toFixed(1) + ' ' + y(p.v).toFixed(1);
        pen = true;
      }
      const color = COLORS[i % COLORS.length];
      const path = svg('path', { d, fill: 'none', stroke: color, 'stroke-width': 2, 'data-series': s.name, class: 'series' });
      const title = svg('title'); title.textContent = s.name; path.appendChild(title);
      root.appendChild(path);
      // Lone points of a sparse series stay visible.
      for (const p of s.points) {
        if (p.v !== null && p.v > 0) root.appendChild(svg('circle', { cx: x(p.t), cy: y(p.v), r: 2.5, fill: color }));
      }
    });
    const legend = el('div', { class: 'legend' });
    series.forEach((s, i) => {
      const item = el('span', { class: 'legend-item' });
      // CSSOM, not a style attribute: the page's CSP allows no inline styles.
      const swatch = el('i');
      swatch.style.background = COLORS[i % COLORS.length];
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(s.name));
      legend.appendChild(item);
    });
    container.appendChild(legend);
  }

  // A horizontal bar chart: items [{label, value}].
  function barChart(container, items, format) {
    const barHeight = 20, gap = 6, labelWidth = 140, width = 460, valueWidth = 80;
    const height = Math.max(1, items.length) * (barHeight + gap) + gap;
    const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'bar-chart', role: 'img' });
    container.replaceChildren(root);
    if (!items.length) {
      const t = svg('text', { x: width / 2, y: height / 2 + 4, 'text-anchor': 'middle', class: 'empty' });
      t.textContent = 'nothing spent in this range';
      root.appendChild(t);
      return;
    }
    const vmax = Math.max(...items.map((it) => it.value), 1e-12);
    items.forEach((it, i) => {
      const yy = gap + i * (barHeight + gap);
      const label = svg('text', { x: labelWidth - 6, y: yy + 14, 'text-anchor': 'end', class: 'axis' });
      label.textContent = it.label.length > 24 ? it.label.slice(0, 23) + '…' : it.label;
      root.appendChild(label);
      const w = Math.max(2, (it.value / vmax) * (width - labelWidth - valueWidth));
      const rect = svg('rect', { x: labelWidth, y: yy, width: w.toFixed(1), height: barHeight, rx: 3, fill: COLORS[i % COLORS.length], 'data-label': it.label });
      const title = svg('title'); title.textContent = it.label + ': ' + format(it.value); rect.appendChild(title);
      root.appendChild(rect);
      const value = svg('text', { x: labelWidth + w + 4, y: yy + 14, class: 'axis' });
      value.textContent = format(it.value);
      root.appendChild(value);
    });
  }

  // A tiny chart of requests per bucket for a table row.
  function sparkline(points) {
    const width = 120, height = 24;
    const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'spark', width, height });
    const vmax = Math.max(1, ...points.map((p) => p.requests));
    const step = width / Math.max(1, points.length);
    points.forEach((p, i) => {
      if (!p.requests) return;
      const h = Math.max(1, (p.requests / vmax) * height);
      const attrs = { x: (i * step).toFixed(2), y: (height - h).toFixed(2), width: Math.max(1, step - 0.3).toFixed(2), height: h.toFixed(2), fill: p.errors ? '#dc2626' : '#2563eb' };
      root.appendChild(svg('rect', attrs));
    });
    return root;
  }

  // ------------------------------------------------------------------ sections
  async function loadTraffic() {
    const report = await api('/ui/api/traffic?window=' + trafficWindow);
    $('#bucket-size').textContent = report.bucket_seconds === 60 ? 'minute' : report.bucket_seconds / 60 + ' minutes';
    const seconds = report.bucket_seconds;
    const groups = report.model_groups;
    const top = groups.slice(0, COLORS.length);
    lineChart($('#chart-rps'), top.map((g) => ({ name: g.name, points: g.points.map((p) => ({ t: p.t, v: p.requests / seconds })) })));
    lineChart($('#chart-p95'), top.map((g) => ({ name: g.name, points: g.points.map((p) => ({ t: p.t, v: p.p95_ms })) })));
    lineChart($('#chart-errors'), top.map((g) => ({ name: g.name, points: g.points.map((p) => ({ t: p.t, v: p.requests ? p.errors / p.requests : null })) })), { percent: true, maxAtLeast: 0.05 });
    fill($('#traffic-groups tbody'), groups.map((g) => {
      const tr = row([g.name, { num: fmt(g.requests, 0) }, { num: fmt(g.rps, 4) }, { num: fmt(g.errors, 0) }, { num: pct(g.error_rate) },
        { num: fmt(g.p50_ms) }, { num: fmt(g.p95_ms) }, { num: fmt(g.p99_ms) }, sparkline(g.points)]);
      tr.dataset.name = g.name;
      return tr;
    }), 'No model requests in this window yet.', 9);
    fill($('#traffic-deployments tbody'), report.deployments.map((d) => {
      const tr = row([d.name, d.model_group, d.provider, { num: fmt(d.requests, 0) }, { num: fmt(d.rps, 4) }, { num: fmt(d.errors, 0) }, { num: pct(d.error_rate) },
        { num: fmt(d.p50_ms) }, { num: fmt(d.p95_ms) }, { num: fmt(d.p99_ms) }, sparkline(d.points)]);
      tr.dataset.name = d.name;
      return tr;
    }), 'No deployment answered in this window yet.', 11);
  }

  const COST_GROUPS = [
    ['feature', '#cost-feature', '(no feature)'],
    ['team', '#cost-team', '(no team)'],
    ['key_alias', '#cost-key', '(master key / no alias)'],
    ['model', '#cost-model', '(not routed)'],
  ];

  async function loadCost() {
    const start = $('#start-date').value, end = $('#end-date').value;
    await Promise.all(COST_GROUPS.map(async ([by, sel, none]) => {
      const rows = await api(`/global/spend/report?group_by=${by}&start_date=${encodeURIComponent(start)}&end_date=${encodeURIComponent(end)}`);
      rows.sort((a, b) => b.spend_nanos - a.spend_nanos);
      const label = (r) => (r.group === null || r.group === '' ? none : String(r.group));
      barChart($(sel + ' .chart'), rows.slice(0, 10).map((r) => ({ label: label(r), value: r.spend })), usd);
      fill($(sel + ' tbody'), rows.map((r) => {
        const tr = row([label(r), { num: usd(r.spend) }, { num: fmt(r.requests, 0) }, { num: fmt(r.total_tokens, 0) }]);
        tr.dataset.name = label(r);
        return tr;
      }), 'Nothing spent in this range.', 4);
    }));
  }

  function stateBadge(state) {
    return el('span', { class: 'badge state-' + state }, state.replace('_', ' '));
  }

  async function loadDeployments() {
    const health = await api('/health');
    const all = [...health.healthy_endpoints, ...health.unhealthy_endpoints]
      .sort((a, b) => (a.model_group + a.deployment_id).localeCompare(b.model_group + b.deployment_id));
    fill($('#deployment-table tbody'), all.map((d) => {
      const err = d.last_error ? `${d.last_error.class} ${d.last_error.status || ''} (${fmt(d.last_error.seconds_ago, 0)} s ago)` : '';
      const tr = row([d.model_group, d.deployment_id, d.provider, stateBadge(d.state),
        { num: d.cooldown_remaining_ms ? fmt(d.cooldown_remaining_ms / 1000, 1) + ' s' : '' },
        { num: fmt(d.recent_failures, 0) }, { num: fmt(d.cooldowns_total, 0) }, { num: fmt(d.in_flight, 0) },
        { num: fmt(d.latency_ms) }, { num: fmt(d.successes, 0) }, { num: fmt(d.failures, 0) }, err]);
      tr.dataset.name = d.deployment_id;
      return tr;
    }), 'No deployments configured.', 12);
  }

  function budgetBar(spend, max) {
    if (max === null || max === undefined) return document.createTextNode('');
    const share = max > 0 ? Math.min(1, spend / max) : 1;
    const root = svg('svg', { viewBox: '0 0 100 10', width: 100, height: 10, class: 'budget' });
    root.appendChild(svg('rect', { x: 0, y: 0, width: 100, height: 10, fill: '#e5e7eb', rx: 2 }));
    root.appendChild(svg('rect', { x: 0, y: 0, width: (share * 100).toFixed(1), height: 10, fill: share >= 0.9 ? '#dc2626' : share >= 0.7 ? '#d97706' : '#16a34a', rx: 2 }));
    const title = svg('title'); title.textContent = (share * 100).toFixed(1) + '% of the budget'; root.appendChild(title);
    return root;
  }

  async function allKeys() {
    const keys = [];
    for (let page = 1; page <= 20; page++) {
      const answer = await api(`/key/list?return_full_object=true&size=100&page=${page}`);
      keys.push(...answer.keys);
      if (page >= answer.total_pages) break;
    }
    return keys;
  }

  async function loadKeys() {
    const [keys, teams, keySpend, teamSpend] = await Promise.all([
      allKeys(), api('/team/list'), api('/global/spend/report?group_by=key'), api('/global/spend/report?group_by=team'),
    ]);
    const spendOf = (rows) => new Map(rows.map((r) => [r.group, r.spend]));
    const byKey = spendOf(keySpend), byTeam = spendOf(teamSpend);
    fill($('#key-table tbody'), keys.map((k) => {
      const spend = byKey.get(k.token) || 0;
      const tr = row([k.key_alias || '(no alias)', String(k.token).slice(0, 10) + '…', k.team_id || '', k.user_id || '',
        { num: usd(spend) }, { num: k.max_budget === undefined ? '' : fmt(k.max_budget, 4) }, budgetBar(spend, k.max_budget),
        { num: k.rpm_limit === null ? '' : fmt(k.rpm_limit, 0) }, { num: k.tpm_limit === null ? '' : fmt(k.tpm_limit, 0) },
        (k.models || []).join(', ') || 'all', k.expires || '', k.blocked ? 'blocked' : '']);
      tr.dataset.name = k.key_alias || '';
      return tr;
    }), 'No virtual keys yet.', 12);
    fill($('#team-table tbody'), teams.map((t) => {
      const spend = byTeam.get(t.team_id) || 0;
      const tr = row([t.team_id, t.team_alias || '', { num: usd(spend) }, { num: t.max_budget === undefined ? '' : fmt(t.max_budget, 4) },
        budgetBar(spend, t.max_budget), { num: t.rpm_limit === null ? '' : fmt(t.rpm_limit, 0) },
        { num: t.tpm_limit === null ? '' : fmt(t.tpm_limit, 0) }, (t.models || []).join(', ') || 'all']);
      tr.dataset.name = t.team_id;
      return tr;
    }), 'No teams yet.', 8);
  }

  async function loadAll() {
    const problems = [];
    const run = async (name, load) => {
      try { await load(); } catch (e) {
        if (e.status === 401 || e.status === 403) throw e;
        problems.push(name + ': ' + e.message);
      }
    };
    try {
      await Promise.all([run('traffic', loadTraffic), run('cost', loadCost), run('deployments', loadDeployments), run('keys', loadKeys)]);
    } catch (e) {
      logout(loginMessage(e));
      return;
    }
    $('#status').textContent = problems.length ? 'Some sections failed: ' + problems.join('; ')
      : 'Updated ' + new Date().toLocaleTimeString();
    $('#status').className = problems.length ? 'error' : 'muted';
    document.body.dataset.loaded = String(Date.now());
  }

  // ------------------------------------------------------------------ login
  function show(signedIn) {
    $('#login').hidden = signedIn;
    $('#dashboard').hidden = !signedIn;
    $('#nav').hidden = !signedIn;
  }

  function logout(message) {
    sessionStorage.removeItem(KEY);
    show(false);
    const box = $('#login-error');
    box.textContent = message || '';
    box.hidden = !message;
  }

  async function login(event) {
    event.preventDefault();
    const input = $('#key');
    const key = input.value.trim();
    input.value = '';
    sessionStorage.setItem(KEY, key);
    try {
      await api('/ui/api/traffic?window=1h');
    } catch (e) {
      logout(loginMessage(e));
      return;
    }
    $('#login-error').hidden = true;
    show(true);
    await loadAll();
  }

  function init() {
    const today = new Date();
    $('#end-date').value = day(today);
    $('#start-date').value = day(new Date(today.getTime() - 6 * 86400000));
    $('#login-form').addEventListener('submit', login);
    $('#logout').addEventListener('click', () => logout(''));
    $('#refresh').addEventListener('click', loadAll);
    $('#range').addEventListener('submit', (e) => { e.preventDefault(); loadCost().catch((err) => { $('#status').textContent = 'cost: ' + err.message; }); });
    for (const button of document.querySelectorAll('[data-window]')) {
      button.addEventListener('click', () => {
        trafficWindow = button.dataset.window;
        for (const b of document.querySelectorAll('[data-window]')) b.classList.toggle('on', b === button);
        loadTraffic().catch((err) => { $('#status').textContent = 'traffic: ' + err.message; });
      });
    }
    if (sessionStorage.getItem(KEY)) {
      show(true);
      loadAll();
    } else {
      show(false);
    }
    // Live numbers without a reload; the cost tables change slowly and refresh on demand.
    setInterval(() => { if (!$('#dashboard').hidden) loadTraffic().catch(() => {}); }, 15000);
  }

  document.addEventListener('DOMContentLoaded', init);
})();
