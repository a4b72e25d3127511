'use strict';
/* Scale-out (issue 23): two `vkdiff serve` workers (--port 0 --queue 4) behind nginx as a round-robin
 * balancer on loopback (tests/serve/nginx.conf.in, run as the current user with its pid, logs and temp
 * files in a private folder). 200 tiny txt2img requests (64x64, steps 2, cfg 1) from 8 concurrent
 * clients: every request answered exactly once with 200 (a 64x64 PNG) or 429 (counted; 429s are fine;
 * a lost request, a network error or a 5xx/502 fails), nginx's access log ($upstream_addr) shows both
 * workers served some and no request generated twice, no nginx errors, and both workers exit 0 on
 * SIGTERM with no sanitizer report.
 *   node tests/serve/load_test.js VKDIFF SOURCE_DIR
 * VKD_SERVE_LOAD_REQUESTS (default 200), VKD_SERVE_LOAD_CLIENTS (8), NGINX (default: nginx in PATH or
 * /usr/sbin/nginx), VKD_SERVE_KEEP=1 keeps the nginx folder. */
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn, spawnSync } = require('child_process');
const t = require('./lib');

const N = Number(process.env.VKD_SERVE_LOAD_REQUESTS || 200);
const CLIENTS = Number(process.env.VKD_SERVE_LOAD_CLIENTS || 8);

function findNginx() {
    const cands = [process.env.NGINX, ...(process.env.PATH || '').split(':').map(d => path.join(d, 'nginx')),
                   '/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx'].filter(Boolean);
    return cands.find(p => { try { fs.accessSync(p, fs.constants.X_OK); return true; } catch (e) { return false; } });
}

/* startNginx(ports) -> {port, dir, proc, stop(), errors()}: a free port picked by binding port 0, retried
 * if another process takes it before nginx binds */
async function startNginx(bin, backends) {
    const tmpl = fs.readFileSync(path.join(__dirname, 'nginx.conf.in'), 'utf8');
    for (let attempt = 1; attempt <= 5; attempt++) {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vkd-nginx-'));
        const port = await t.freePort();
        const conf = tmpl
            .replace(/@USER@/g, process.getuid && process.getuid() === 0 ? 'user root;' : '')
            .replace(/@PREFIX@/g, dir)
            .replace(/@LISTEN@/g, String(port))
            .replace(/@SERVERS@/g, backends.map(p => `        server 127.0.0.1:${p} max_fails=0;`).join('\n'));
        fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
        const args = ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'error.log'), '-g', 'daemon off;'];
        const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        proc.stdout.on('data', d => { out += d; });
        proc.stderr.on('data', d => { out += d; });
        let exited = null;
        const exitP = new Promise(r => proc.on('exit', (code, sig) => { exited = { code, sig }; r(exited); }));
        const ok = await t.waitFor(async () => {
            if (exited)
                return 'exited';
            const r = await t.get(`http://127.0.0.1:${port}`, '/health', { timeoutMs: 5000 }).catch(() => null);
            return r && r.status === 200 ? 'up' : null;
        }, 15000, 200);
        const readLog = f => { try { return fs.readFileSync(path.join(dir, f), 'utf8'); } catch (e) { return ''; } };
        if (ok === 'up') {
            t.log(`nginx ${bin} on port ${port} (folder ${dir}) in front of ${backends.join(', ')}`);
            return {
                port, dir, proc, url: `http://127.0.0.1:${port}`, readLog,
                stop: async () => {
                    if (!exited)
                        proc.kill('SIGQUIT'); /* graceful */
                    const k = setTimeout(() => proc.kill('SIGKILL'), 15000);
                    const e = await exitP;
                    clearTimeout(k);
                    return e;
                },
            };
        }
        const why = `${out}${readLog('error.log')}`;
        t.log(`nginx on port ${port}: ${ok || 'no answer on /health'} (attempt ${attempt}): ${why}`);
        if (!exited)
            proc.kill('SIGKILL');
        await exitP;
        fs.rmSync(dir, { recursive: true, force: true });
        if (!/Address already in use/.test(why))
            break; /* only a port taken meanwhile is worth another try */
    }
    throw new t.Fatal('nginx did not start');
}

t.main('load', async () => {
    const bin = findNginx();
    t.must(bin, 'no nginx (install nginx-light: tools/deps.sh --test), or set NGINX');
    t.log(spawnSync(bin, ['-v'], { encoding: 'utf8' }).stderr.trim());

    const [a, b] = await Promise.all([t.startServer(['--queue', '4']), t.startServer(['--queue', '4'])]);
    t.log(`workers at ${a.url} and ${b.url}`);
    const ngx = await startNginx(bin, [a.port, b.port]);

    /* --- 200 tiny requests from 8 clients */
    let next = 0;
    const results = new Array(N).fill(null);
    const t0 = Date.now();
    const client = async c => {
        for (;;) {
            const i = next++;
            if (i >= N)
                return;
            const body = { prompt: `a small ${['red', 'green', 'blue', 'yellow'][i % 4]} circle in the center on a white background`,
                           width: 64, height: 64, steps: 2, cfg_scale: 1, seed: 1000 + i };
            const q0 = Date.now();
            let r;
            try {
                r = await t.post(ngx.url, '/sdapi/v1/txt2img', body,
                                 { timeoutMs: 600000, headers: { 'X-Vkdiff-Test-Id': `r${i}` } });
            } catch (e) {
                r = { status: 0, error: `${e.code || ''} ${e.message}`, text: '' };
            }
            r.ms = Date.now() - q0;
            r.client = c;
            if (results[i])
                t.fail(`request ${i} answered twice`);
            results[i] = r;
            if (r.status === 200) {
                try {
                    const p = t.parsePNG(Buffer.from(r.json.images[0], 'base64'));
                    if (p.width !== 64 || p.height !== 64)
                        r.bad = `a ${p.width}x${p.height} image`;
                    if (r.json.images.length !== 1)
                        r.bad = `${r.json.images.length} images`;
                } catch (e) {
                    r.bad = e.message;
                }
                delete r.body; /* keep memory small */
                delete r.json;
                delete r.text;
            } else if (r.status === 429) {
                r.retryAfter = r.headers['retry-after'];
                /* a client would wait Retry-After; a short pause here keeps the queue busy without a storm */
                await t.sleep(100);
            }
        }
    };
    await Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));
    const secs = (Date.now() - t0) / 1000;

    const counts = {};
    for (const r of results)
        counts[r ? r.status : 'lost'] = (counts[r ? r.status : 'lost'] || 0) + 1;
    const lat = results.filter(r => r && r.status === 200).map(r => r.ms).sort((x, y) => x - y);
    t.log(`${N} requests from ${CLIENTS} clients in ${secs.toFixed(1)} s: ${JSON.stringify(counts)}; ` +
          `200 latency median ${lat[lat.length >> 1]} ms, max ${lat[lat.length - 1]} ms`);
    results.forEach((r, i) => {
        if (!r)
            t.fail(`request ${i}: never answered`);
        else if (r.status !== 200 && r.status !== 429)
            t.fail(`request ${i}: ${r.status ? t.desc(r) : r.error}`);
        else if (r.bad)
            t.fail(`request ${i}: 200 with ${r.bad}`);
        else if (r.status === 429 && !/^\d+$/.test(r.retryAfter || ''))
            t.fail(`request ${i}: 429 without Retry-After (${r.retryAfter})`);
    });
    t.check((counts[200] || 0) >= N / 2, `only ${counts[200] || 0} of ${N} requests answered 200`);

    /* --- a client that goes away from nginx: nginx closes its connection to the worker (the default
     * proxy_ignore_client_abort off), which cancels the job */
    {
        const id = 'vkd-load-abort-' + process.pid;
        let req = null;
        const p = t.post(ngx.url, '/sdapi/v1/txt2img', { prompt: 'a large red circle in the center on a blue background',
                                                         width: 64, height: 64, steps: 150, n_iter: 4, seed: 1, force_task_id: id },
                         { timeoutMs: 600000, onRequest: q => { req = q; } }).then(r => `HTTP ${r.status}`, e => e.code || e.message);
        const holder = await t.waitFor(async () => {
            for (const s of [a, b]) {
                const r = await t.get(s.url, `/sdapi/v1/progress?id_task=${id}`).catch(() => null);
                if (r && r.json && r.json.progress > 0)
                    return s;
            }
            return null;
        }, 120000, 100);
        if (t.check(holder, 'a long job through nginx never showed progress > 0 on either worker')) {
            req.destroy();
            const td = Date.now();
            t.log(`abort through nginx: the client went away (${await p})`);
            const idle = await t.waitFor(async () => {
                const r = await t.get(holder.url, '/sdapi/v1/progress').catch(() => null);
                return r && r.json && r.json.state && r.json.state.job_count === 0;
            }, 10000, 200);
            if (t.check(idle, `abort through nginx: the worker on port ${holder.port} still runs the job 10 s after the client went away`))
                t.log(`ok: abort through nginx: the worker on port ${holder.port} dropped the job within ${Date.now() - td} ms`);
        }
    }

    /* --- nginx's access log: one line per request, who served it */
    await ngx.stop();
    const log = ngx.readLog('access.log').split('\n').filter(l => / id=r\d+$/.test(l));
    const perId = new Map(), served = { [a.port]: 0, [b.port]: 0 }, tried = { [a.port]: 0, [b.port]: 0 };
    let twice = 0, retried = 0;
    for (const line of log) {
        const id = / id=(r\d+)$/.exec(line)[1];
        perId.set(id, (perId.get(id) || 0) + 1);
        const addrs = (/upstream=(.*?) upstream_status=/.exec(line) || [])[1] || '';
        const stats = (/upstream_status=(.*?) time=/.exec(line) || [])[1] || '';
        const ports = [...addrs.matchAll(/:(\d+)/g)].map(m => Number(m[1]));
        const sts = stats.split(/, ?/).map(Number);
        ports.forEach((p, k) => {
            if (p in tried)
                tried[p]++;
            if (sts[k] === 200 && p in served)
                served[p]++;
        });
        if (sts.filter(s => s === 200).length > 1)
            twice++;
        if (sts.length > 1)
            retried++;
    }
    t.log(`nginx access log: ${log.length} lines; 200s by worker ${JSON.stringify(served)}, tries by worker ` +
          `${JSON.stringify(tried)}; ${retried} passed on to the other worker (a 429 first)`);
    t.check(log.length === N, `nginx logged ${log.length} requests, sent ${N}`);
    t.check([...perId.values()].every(v => v === 1) && perId.size === N, 'nginx: a request logged twice or missing');
    t.check(twice === 0, `${twice} requests generated by both workers`);
    t.check(served[a.port] > 0 && served[b.port] > 0, `both workers must serve some: ${JSON.stringify(served)}`);
    const errs = ngx.readLog('error.log').split('\n').filter(l => /\[(error|crit|alert|emerg)\]/.test(l));
    t.check(errs.length === 0, `nginx error log:\n${errs.slice(0, 20).join('\n')}`);

    for (const [s, name] of [[a, 'worker A'], [b, 'worker B']]) {
        t.check(!s.exit, `${name} (port ${s.port}) exited during the load: ${JSON.stringify(s.exit)}`);
        await s.stopClean(name);
    }
    if (!process.env.VKD_SERVE_KEEP && !t.failures())
        fs.rmSync(ngx.dir, { recursive: true, force: true });
    else
        t.log(`nginx folder kept: ${ngx.dir}`);
});
