"""The gallery: one HTML page (plain HTML, CSS and a little JS; no build step) and the run summaries it shows.

Owns :func:`run_summary` (what a person sees of a run: its images, prompts, seeds, the exact files by sha256,
backend, timings, whether the server can replay it) and :func:`render_page`, used live by ``hubctl serve``
(the page reads ``/v1/runs`` and posts to ``/v1/generate``) and statically by ``hubctl runs export`` (the
summaries embedded in the page, image links relative). Every value from a run reaches the page through
``textContent`` or an escaped JSON literal, never as markup. Pure: no I/O, no FastAPI.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from hubctl.run.records import RunRecord, images_of

__all__ = ["run_summary", "render_page", "CSP"]

# The page's Content-Security-Policy: its own inline script and style, images from itself (or blob: URLs the
# script makes when a token is needed), requests to itself only.
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' blob:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def run_summary(rec: RunRecord, image_url: Callable[[str, int], str]) -> dict[str, Any]:
    """A run as the gallery and ``GET /v1/runs`` show it (no local paths)."""
    params = json.loads(rec.params_json or "{}")
    packages = json.loads(rec.packages_json or "[]")
    loras = params.get("loras") or {}
    images = [{"index": k, "prompt": im.get("prompt", ""), "negative": im.get("negative", ""), "seed": im.get("seed"),
               "image_sha256": im.get("image_sha256", ""), "url": image_url(rec.id, k)} for k, im in enumerate(images_of(rec))]
    fused = bool(params.get("fuse_loras")) and any(float(w) for w in loras.values())
    return {
        "id": rec.id, "created": rec.created, "replay_of": rec.replay_of, "base": rec.base, "model_hash": rec.model_hash,
        "lock_digest": rec.lock_digest, "device": rec.device, "dtype": rec.dtype, "attention": rec.attention,
        "sampler": rec.sampler, "steps": rec.steps, "guidance": rec.guidance, "width": rec.width, "height": rec.height,
        "seconds": rec.seconds, "timings": params.get("timings") or {}, "cpu_threads": params.get("cpu_threads"),
        "batch_size": len(images), "images": images, "loras": loras,
        "packages": [{"name": p.get("name"), "version": p.get("version"), "kind": p.get("kind"), "family": p.get("family"),
                      "files": [{"path": f.get("path"), "sha256": f.get("sha256")} for f in p.get("files", [])]} for p in packages],
        "replayable": not params.get("controlnet") and not fused,
        "replay_command": f"hubctl generate --replay {rec.id}" + (" --image K" if len(images) > 1 else ""),
    }


def _json_literal(value: Any) -> str:
    """JSON safe inside a <script> element (no '</script>', no '<!--', no U+2028/9 line breaks)."""
    s = json.dumps(value, separators=(",", ":"), ensure_ascii=True)
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(*, mode: str, runs: list[dict[str, Any]] | None = None, title: str = "hubctl gallery") -> str:
    """The gallery page. ``mode`` "live": reads and writes through the /v1 API (the form and replay work);
    "static": shows ``runs`` (embedded) with relative image links, for ``hubctl runs export``."""
    if mode not in ("live", "static"):
        raise ValueError(mode)
    data = _json_literal({"mode": mode, "runs": runs or []})
    return (_PAGE.replace("__TITLE__", title.replace("&", "&amp;").replace("<", "&lt;"))
            .replace("__DATA__", data))


_PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
 body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f6f4;color:#222}
 header{padding:10px 16px;background:#223;color:#eee;display:flex;gap:16px;align-items:baseline;flex-wrap:wrap}
 header h1{font-size:18px;margin:0} header small{opacity:.75}
 main{display:flex;gap:16px;padding:16px;align-items:flex-start;flex-wrap:wrap}
 #gen-form{background:#fff;border:1px solid #ddd;border-radius:6px;padding:12px;width:260px;display:grid;gap:6px}
 #gen-form label{display:grid;gap:2px;font-size:12px;color:#555}
 #gen-form input,#gen-form textarea,#gen-form select{font:inherit;padding:4px}
 #gen-form .row{display:grid;grid-template-columns:1fr 1fr;gap:6px}
 #gen-form button{padding:6px;font-weight:600}
 #status{font-size:12px;min-height:1.2em;color:#555} #status.err{color:#b00}
 #runs{flex:1;display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px;min-width:300px}
 .thumb{background:#fff;border:1px solid #ddd;border-radius:6px;padding:6px;cursor:pointer;margin:0}
 .thumb img{width:100%;image-rendering:pixelated;aspect-ratio:1;object-fit:contain;background:#eee}
 .thumb figcaption{font-size:12px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
 .thumb .seed{color:#777}
 #detail{position:fixed;inset:5% 10%;background:#fff;border:1px solid #999;border-radius:8px;padding:16px;overflow:auto;
   box-shadow:0 8px 40px #0006;display:none;gap:16px} #detail.open{display:flex;flex-wrap:wrap}
 #detail img{width:min(512px,90%);image-rendering:pixelated;background:#eee}
 #detail dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 10px;margin:0;font-size:13px;flex:1;min-width:280px}
 #detail dt{color:#666} #detail dd{margin:0;word-break:break-all} code{font-size:12px}
 #empty{color:#777}
 #tokenbox{display:none} #tokenbox.open{display:grid}
</style></head>
<body>
<header><h1>hubctl gallery</h1><small id="lockinfo"></small></header>
<main>
<form id="gen-form" autocomplete="off">
  <div id="tokenbox"><label>Bearer token<input id="token" type="password"></label></div>
  <label>Prompt<textarea id="prompt" rows="3" required></textarea></label>
  <label>Negative prompt<input id="negative"></label>
  <div class="row"><label>Seed<input id="seed" type="number" min="0" placeholder="random"></label>
  <label>Images<input id="images" type="number" min="1" value="1"></label></div>
  <div class="row"><label>Steps<input id="steps" type="number" min="1" value="20"></label>
  <label>Guidance<input id="guidance" type="number" step="0.5" min="0" value="7.5"></label></div>
  <div class="row"><label>Width<input id="width" type="number" step="8" min="8"></label>
  <label>Height<input id="height" type="number" step="8" min="8"></label></div>
  <div id="loras"></div>
  <button id="generate" type="submit">Generate</button>
  <div id="status" role="status"></div>
</form>
<section id="runs" aria-label="runs"><p id="empty">No runs yet.</p></section>
</main>
<div id="detail" role="dialog" aria-modal="true"></div>
<script>
"use strict";
const BOOT = __DATA__;
const LIVE = BOOT.mode === "live";
let token = sessionStorage.getItem("hubctl-token") || "";
const $ = (id) => document.getElementById(id);
function el(tag, text, cls) { const e = document.createElement(tag); if (text !== undefined && text !== null) e.textContent = String(text); if (cls) e.className = cls; return e; }
function status(msg, err) { const s = $("status"); s.textContent = msg; s.className = err ? "err" : ""; }
async function api(path, opts) {
  opts = opts || {}; opts.headers = Object.assign({"Accept": "application/json"}, opts.headers || {});
  if (token) opts.headers["Authorization"] = "Bearer " + token;
  const r = await fetch(path, opts);
  if (r.status === 401) { $("tokenbox").className = "open"; throw new Error("this server needs a bearer token"); }
  let body = null; try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) {
    let msg = r.status + "";
    if (body && Array.isArray(body.detail)) msg += ": " + body.detail.map(d => (d.loc || []).slice(1).join(".") + " " + d.msg).join("; ");
    else if (body && body.detail) msg += ": " + body.detail;
    if (r.status === 429) msg += " (retry after " + r.headers.get("Retry-After") + " s)";
    throw new Error(msg);
  }
  return body;
}
const blobs = new Map();
async function setSrc(img, url) {
  if (!LIVE || !token) { img.src = url; return; }
  if (!blobs.has(url)) {
    const r = await fetch(url, {headers: {"Authorization": "Bearer " + token}});
    if (!r.ok) return;
    blobs.set(url, URL.createObjectURL(await r.blob()));
  }
  img.src = blobs.get(url);
}
function short(h) { return h ? String(h).slice(0, 16) : ""; }
function row(dl, k, v, title) { dl.append(el("dt", k)); const dd = el("dd", v); if (title) dd.title = title; dl.append(dd); }
function showDetail(run, k) {
  const im = run.images[k], d = $("detail");
  d.replaceChildren(); d.className = "open";
  const img = el("img"); img.alt = im.prompt; setSrc(img, im.url); d.append(img);
  const dl = el("dl"); dl.id = "detail-fields";
  row(dl, "run", run.id + (run.batch_size > 1 ? "  image " + k + " of " + run.batch_size : ""));
  if (run.replay_of) row(dl, "replay of", run.replay_of);
  row(dl, "prompt", im.prompt); if (im.negative) row(dl, "negative", im.negative);
  row(dl, "seed", im.seed);
  row(dl, "settings", run.width + "x" + run.height + ", " + run.steps + " steps, " + run.sampler + ", cfg " + run.guidance);
  row(dl, "model", run.base + "  [" + run.model_hash + "]");
  for (const p of run.packages) {
    const w = (p.kind === "lora" && p.name in run.loras) ? "  weight " + run.loras[p.name] : "";
    const weights = p.files.filter(f => /\.(safetensors|bin|ckpt|pt|gguf)$/.test(f.path));
    const others = p.files.length - weights.length;
    for (const f of weights) row(dl, p.kind, p.name + " " + p.version + w + "  " + f.path + "  sha256 " + short(f.sha256), f.sha256);
    if (!weights.length) row(dl, p.kind, p.name + " " + p.version + w);
    if (others) row(dl, "", "+ " + others + " config file(s), hashes in " + (LIVE ? "/v1/runs/" + run.id : "runs.json"));
  }
  row(dl, "lock", short(run.lock_digest), run.lock_digest);
  row(dl, "image sha256", short(im.image_sha256), im.image_sha256);
  row(dl, "backend", run.device + " " + run.dtype + ", attention " + run.attention + (run.cpu_threads ? ", " + run.cpu_threads + " cpu threads" : ""));
  const t = run.timings || {};
  row(dl, "timings", "run " + run.seconds + " s" + (t.generate !== undefined ? " (generate " + t.generate + " s, write " + t.write + " s)" : ""));
  row(dl, "created", run.created);
  const actions = el("dd"); dl.append(el("dt", "")); dl.append(actions);
  if (LIVE && run.replayable) {
    const b = el("button", "Replay"); b.id = "replay";
    b.onclick = async () => {
      b.disabled = true; status("replaying " + run.id + " ...");
      try { const r = await api("/v1/runs/" + run.id + "/replay", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({image: k})});
            status("replay " + r.replay + ": image " + (r.match ? "identical" : "different")); await loadRuns(); }
      catch (e) { status(e.message, true); } finally { b.disabled = false; }
    };
    actions.append(b);
  } else actions.append(el("code", run.replay_command));
  const close = el("button", "Close"); close.onclick = () => { d.className = ""; }; actions.append(" ", close);
  d.append(dl);
}
function render(runs) {
  const box = $("runs"); box.replaceChildren();
  if (!runs.length) { box.append(el("p", "No runs yet.")); return; }
  for (const run of runs) run.images.forEach((im, k) => {
    const f = el("figure", null, "thumb"); f.dataset.run = run.id; f.dataset.image = k; f.tabIndex = 0;
    const img = el("img"); img.alt = im.prompt; img.loading = "lazy"; setSrc(img, im.url); f.append(img);
    const c = el("figcaption"); c.append(el("span", im.prompt + " "), el("span", "seed " + im.seed, "seed")); f.append(c);
    f.onclick = () => showDetail(run, k); f.onkeydown = (e) => { if (e.key === "Enter") showDetail(run, k); };
    box.append(f);
  });
}
async function loadRuns() {
  if (!LIVE) { render(BOOT.runs); return; }
  try { const r = await api("/v1/runs?limit=100"); render(r.runs); } catch (e) { status(e.message, true); }
}
async function loadLock() {
  try {
    const l = await api("/v1/lock");
    $("lockinfo").textContent = l.base + " · lock " + short(l.lock_digest) + " · " + l.device + " " + l.dtype;
    const box = $("loras"); box.replaceChildren();
    for (const name of l.loras) {
      const lab = el("label", "LoRA " + name + " weight"); const inp = el("input"); inp.type = "number"; inp.step = "0.1";
      inp.value = "1"; inp.dataset.lora = name; lab.append(inp); box.append(lab);
    }
    if (l.limits) { $("steps").max = l.limits.max_steps; $("images").max = l.limits.max_images; $("width").max = $("height").max = l.limits.max_size; }
  } catch (e) { status(e.message, true); }
}
$("token").onchange = (e) => { token = e.target.value.trim(); sessionStorage.setItem("hubctl-token", token); blobs.clear(); loadLock(); loadRuns(); };
$("gen-form").onsubmit = async (e) => {
  e.preventDefault();
  const num = (id) => $(id).value === "" ? null : Number($(id).value);
  const body = {prompt: $("prompt").value, negative: $("negative").value, steps: num("steps"), guidance: num("guidance"), images: num("images")};
  for (const id of ["seed", "width", "height"]) if (num(id) !== null) body[id] = num(id);
  const loras = {}; for (const inp of document.querySelectorAll("#loras input")) loras[inp.dataset.lora] = Number(inp.value);
  if (Object.keys(loras).length) body.loras = loras;
  $("generate").disabled = true; status("generating ...");
  try {
    const r = await api("/v1/generate", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    status("run " + r.run_id + ": " + r.images.length + " image(s) in " + r.seconds + " s"); await loadRuns();
  } catch (err) { status(err.message, true); } finally { $("generate").disabled = false; }
};
document.addEventListener("keydown", (e) => { if (e.key === "Escape") $("detail").className = ""; });
if (!LIVE) { $("gen-form").style.display = "none"; $("lockinfo").textContent = BOOT.runs.length + " runs, exported by hubctl"; }
else loadLock();
loadRuns();
</script>
</body></html>
"""
