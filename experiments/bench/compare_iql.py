"""IQL gradient steps/s: rlx against JAX-CORL's IQL (the anchor), side by side in one run.

    bash experiments/bench/setup_anchors.sh iql         # the anchor's venv + its iql.py copy
    .venv/bin/python experiments/bench/compare_iql.py   # ~30 min on an idle 2-core machine

Batch 256, 256×256 networks, 1M synthetic hopper-shaped transitions (iql_common), 20k
gradient steps per seed. Only gradient steps are timed; nothing is evaluated. Every entry is
its own process, run one at a time so none competes for the cores:

  matmul ceiling        matmul_ceiling.py, at the start and again at the end (the higher is used)
  rlx, 1 seed           bench_iql.py --seeds 1 --devices 1
  rlx, 8 seeds          bench_iql.py --seeds 8 --devices 1    (one vmapped program, one device)
  rlx, 8 seeds          bench_iql.py --seeds 8 --devices all  (vmapped, sharded over one XLA
                                                              device per core: rlx train's default)
  JAX-CORL, 8 seeds     anchor_jaxcorl_iql.py --seed i, i = 0..7, one process after another
                        (JAX-CORL runs one seed per process). --anchor-procs k < 8 measures k
                        processes and extrapolates the 8-seed aggregate from them; the output
                        says so.

Rates: "steps/s" is the steady rate (median timed block after the first, summed over seeds);
"incl. start-up" is seeds × steps ÷ (process launch -> last step), i.e. what a user waits
for. For the anchor's 8 seeds that is 8 × steps ÷ the sum of the 8 processes' wall times.
Start-up = process launch -> ready to run the first gradient step (imports, data, state,
compile). GFLOP/s = each program's own XLA FLOP count of one gradient step (compiled alone)
× steps/s; utilisation = that ÷ the dense-matmul ceiling measured in this run.

Writes <out-dir>/bench_iql.json (every measurement, the ratios, the targets) and
<out-dir>/bench_iql.md (the table); the per-process JSONs go to <out-dir>/bench_iql/.
If the anchor cannot run (venv or file missing, or it fails), its rows are ANCHORS.md's
numbers, labelled "not measured in this run", and the reason is recorded.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import iql_common  # noqa: E402

MAIN = sys.executable
ANCHOR_PY = os.path.join(HERE, ".venv-jaxcorl", "bin", "python")
ANCHOR_FILE = os.path.join(HERE, ".anchor-src", "jaxcorl_iql.py")

# ANCHORS.md, "Measured on this project's machine": used only when the anchor cannot run here.
ANCHORS_MD = {"steps_per_s": 228.0, "gflops_per_s": 132.0, "compile_s": 7.0, "startup_s": 13.0,
              "seq8_wall_s": 805.0, "steps_per_seed": 20_000}
TARGETS = {"one_seed_ratio": 1.2, "one_seed_utilisation": 0.85, "eight_seed_ratio": 1.5, "compile_s": 5.0}


def run(raw, name, cmd, fatal=True, quiet=False):
    out = os.path.join(raw, name + ".json")
    if os.path.exists(out):
        os.remove(out)
    print(f"== {name}: {' '.join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd)}", flush=True)
    env = dict(os.environ, BENCH_LAUNCH_T=repr(time.time()))
    proc = subprocess.run(cmd + ["--out", out], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
                          stdout=subprocess.DEVNULL if quiet else None)
    if proc.returncode != 0 or not os.path.exists(out):
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        if fatal:
            print(proc.stderr, file=sys.stderr)
            raise SystemExit(f"{name} failed (exit {proc.returncode})")
        print(f"   {name} FAILED (exit {proc.returncode}):\n{tail}", flush=True)
        return {"error": f"exit {proc.returncode}", "stderr_tail": tail}
    with open(out) as f:
        res = json.load(f)
    print("   " + json.dumps({k: res.get(k) for k in ("compile_s", "startup_s", "steps_per_s", "e2e_steps_per_s",
                                                      "gflops_per_s", "loadavg_before")}), flush=True)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20_000, help="gradient steps per seed (multiple of --chunk and of 8)")
    ap.add_argument("--chunk", type=int, default=1_000, help="rlx: steps per update call; anchor: steps per timed block")
    ap.add_argument("--transitions", type=int, default=1_000_000)
    ap.add_argument("--anchor-procs", type=int, default=8,
                    help="anchor processes actually run for the 8-seed aggregate (fewer: extrapolated)")
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "experiments", "results"))
    args = ap.parse_args()
    if args.steps % args.chunk or args.steps % 8 or args.chunk % 8:
        ap.error("--steps must be a multiple of --chunk, and both multiples of 8 (the anchor's steps per call)")
    raw = os.path.join(args.out_dir, "bench_iql")
    os.makedirs(raw, exist_ok=True)
    common = ["--steps", str(args.steps), "--transitions", str(args.transitions)]
    rlx = [MAIN, os.path.join(HERE, "bench_iql.py"), "--chunk", str(args.chunk)] + common
    t_start, load_start = time.time(), os.getloadavg()

    results = {"ceiling_start": run(raw, "matmul_ceiling_start", [MAIN, os.path.join(HERE, "matmul_ceiling.py")],
                                     quiet=True)}
    results["rlx_s1"] = run(raw, "rlx_s1", rlx + ["--seeds", "1", "--devices", "1"])

    anchor_missing = [p for p in (ANCHOR_PY, ANCHOR_FILE) if not os.path.exists(p)]
    anchor_runs, anchor_error = [], None
    anchor_cmd = lambda s: [ANCHOR_PY, os.path.join(HERE, "anchor_jaxcorl_iql.py"), "--seed", str(s),
                            "--group", str(args.chunk)] + common
    if anchor_missing:
        anchor_error = ("not set up: " + ", ".join(os.path.relpath(p, ROOT) for p in anchor_missing)
                        + " missing (run `bash experiments/bench/setup_anchors.sh iql`)")
        print("== anchor " + anchor_error, flush=True)
    else:
        r = run(raw, "jaxcorl_seed0", anchor_cmd(0), fatal=False)
        if "error" in r:
            anchor_error = f"anchor_jaxcorl_iql.py failed ({r['error']}): {r['stderr_tail']}"
        else:
            anchor_runs.append(r)

    results["rlx_s8_dev1"] = run(raw, "rlx_s8_dev1", rlx + ["--seeds", "8", "--devices", "1"])
    results["rlx_s8_devall"] = run(raw, "rlx_s8_devall", rlx + ["--seeds", "8", "--devices", "all"])

    for s in range(1, args.anchor_procs if anchor_runs else 0):
        r = run(raw, f"jaxcorl_seed{s}", anchor_cmd(s), fatal=False)
        if "error" in r:
            anchor_error = f"anchor process seed {s} failed ({r['error']}): {r['stderr_tail']}"
            break
        anchor_runs.append(r)
    results["jaxcorl"] = anchor_runs
    results["ceiling_end"] = run(raw, "matmul_ceiling_end", [MAIN, os.path.join(HERE, "matmul_ceiling.py")],
                                 quiet=True)
    # The same chain at IQL's own shape ([256, 256] @ [256, 256]): what a program made only of
    # these matmuls reaches here, i.e. the most the utilisation column could show.
    results["ceiling_b256"] = run(raw, "matmul_ceiling_b256", [MAIN, os.path.join(HERE, "matmul_ceiling.py"),
                                                               "--batch", "256", "--iters", "2000"], quiet=True)
    load_end = os.getloadavg()

    summary = summarise(results, anchor_runs, anchor_error, args)
    summary.update({"started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t_start)),
                    "duration_s": time.time() - t_start, "loadavg_start": load_start, "loadavg_end": load_end,
                    "cpu_count": os.cpu_count(), "raw": results})
    with open(os.path.join(args.out_dir, "bench_iql.json"), "w") as f:
        json.dump(summary, f, indent=2)
    md = markdown(summary)
    with open(os.path.join(args.out_dir, "bench_iql.md"), "w") as f:
        f.write(md)
    print(md)


def summarise(results, anchor_runs, anchor_error, args):
    ceiling = max(results["ceiling_start"]["gflops_per_s"], results["ceiling_end"]["gflops_per_s"])
    n8 = 8
    rows = []

    def row(key, label, r, seeds, measured=True, note=""):
        flops = r.get("xla_flops_per_step")
        gf = r.get("gflops_per_s")
        rows.append({"key": key, "setting": label, "seeds": seeds, "measured": measured, "note": note,
                     "steps_per_s": r["steps_per_s"], "e2e_steps_per_s": r["e2e_steps_per_s"],
                     "compile_s": r["compile_s"], "startup_s": r["startup_s"],
                     "xla_flops_per_step": flops, "gflops_per_s": gf,
                     # ANCHORS.md's GFLOP/s was measured on another day: no ratio to today's ceiling
                     "utilisation": None if gf is None or not measured else gf / ceiling})

    if anchor_runs:
        a0 = anchor_runs[0]
        row("anchor_s1", "JAX-CORL IQL (anchor), 1 seed, 1 process", a0, 1)
        k = len(anchor_runs)
        walls = [r["wall_s"] for r in anchor_runs]
        steady = [r["steps_per_s"] for r in anchor_runs]
        seq_wall = sum(walls) if k >= n8 else n8 * sum(walls) / k
        how = (f"{n8} processes run one after another, each measured" if k >= n8 else
               f"EXTRAPOLATED: {k} process(es) measured, the {n8}-seed total is {n8} × their mean wall time")
        flops = a0["xla_flops_per_step"]
        seq = {"steps_per_s": iql_common.median(steady), "e2e_steps_per_s": n8 * args.steps / seq_wall,
               "compile_s": iql_common.median([r["compile_s"] for r in anchor_runs]),
               "startup_s": iql_common.median([r["startup_s"] for r in anchor_runs]),
               "xla_flops_per_step": flops,
               "gflops_per_s": None if flops is None else flops * iql_common.median(steady) / 1e9}
        label = (f"JAX-CORL IQL (anchor), {n8} seeds one after another ({n8} processes)" if k >= n8 else
                 f"JAX-CORL IQL (anchor), {n8} seeds one after another [EXTRAPOLATED from {k} process(es)]")
        row("anchor_s8", label, seq, n8, note=how)
        anchor_info = {"measured": True, "processes_run": k, "seq8_wall_s": seq_wall, "seq8_how": how,
                       "error_after": anchor_error}
    else:
        a = ANCHORS_MD
        fallback = {"steps_per_s": a["steps_per_s"],
                    "e2e_steps_per_s": a["steps_per_s"] * a["steps_per_seed"] / (
                        a["steps_per_seed"] + a["steps_per_s"] * (a["compile_s"] + a["startup_s"])),
                    "compile_s": a["compile_s"], "startup_s": a["startup_s"] + a["compile_s"],
                    "xla_flops_per_step": a["gflops_per_s"] * 1e9 / a["steps_per_s"], "gflops_per_s": a["gflops_per_s"]}
        note = "ANCHORS.md's numbers, NOT MEASURED IN THIS RUN"
        row("anchor_s1", "JAX-CORL IQL (anchor), 1 seed [ANCHORS.md, not measured in this run]", fallback, 1,
            measured=False, note=note)
        seq = dict(fallback, e2e_steps_per_s=n8 * a["steps_per_seed"] / a["seq8_wall_s"])
        row("anchor_s8", f"JAX-CORL IQL (anchor), {n8} seeds one after another "
            "[ANCHORS.md, not measured in this run]", seq, n8, measured=False, note=note)
        anchor_info = {"measured": False, "why": anchor_error, "source": "/work/shared/ANCHORS.md", **a}

    ndev = len(results["rlx_s8_devall"]["devices"])
    row("rlx_s1", "rlx IQL, 1 seed (1 device)", results["rlx_s1"], 1)
    row("rlx_s8_dev1", f"rlx IQL, {n8} seeds vmapped, 1 device", results["rlx_s8_dev1"], n8)
    row("rlx_s8_devall", f"rlx IQL, {n8} seeds vmapped, sharded over {ndev} devices (rlx train's default)",
        results["rlx_s8_devall"], n8)
    by = {r["key"]: r for r in rows}
    for r in rows:
        ref = by["anchor_s1"] if r["seeds"] == 1 else by["anchor_s8"]
        r["ratio_steady"] = r["steps_per_s"] / ref["steps_per_s"]
        r["ratio_e2e"] = r["e2e_steps_per_s"] / ref["e2e_steps_per_s"]

    t = TARGETS
    s1, d1, da = by["rlx_s1"], by["rlx_s8_dev1"], by["rlx_s8_devall"]
    targets = [
        {"target": f"1 seed ≥ {t['one_seed_ratio']}× the anchor (steady steps/s)", "value": s1["ratio_steady"],
         "met": s1["ratio_steady"] >= t["one_seed_ratio"]},
        {"target": f"1 seed ≥ {100 * t['one_seed_utilisation']:.0f}% of the matmul ceiling",
         "value": s1["utilisation"], "met": s1["utilisation"] is not None and
         s1["utilisation"] >= t["one_seed_utilisation"]},
        {"target": f"{n8} seeds, one vmapped program, sharded (default) ≥ {t['eight_seed_ratio']}× the sequential "
                   "aggregate, start-up included", "value": da["ratio_e2e"], "met": da["ratio_e2e"] >= t["eight_seed_ratio"]},
        {"target": f"{n8} seeds, one vmapped program, 1 device ≥ {t['eight_seed_ratio']}× the sequential aggregate, "
                   "start-up included", "value": d1["ratio_e2e"], "met": d1["ratio_e2e"] >= t["eight_seed_ratio"]},
        {"target": f"compile ≤ {t['compile_s']:.0f} s (1 seed)", "value": s1["compile_s"],
         "met": s1["compile_s"] <= t["compile_s"]},
        {"target": f"compile ≤ {t['compile_s']:.0f} s ({n8} seeds, sharded)", "value": da["compile_s"],
         "met": da["compile_s"] <= t["compile_s"]},
    ]
    return {"benchmark": "IQL gradient steps/s, batch 256, 256x256, synthetic hopper-shaped data",
            "steps_per_seed": args.steps, "chunk": args.chunk, "transitions": args.transitions,
            "matmul_ceiling_gflops": ceiling,
            "matmul_ceiling_start_end_gflops": [results["ceiling_start"]["gflops_per_s"],
                                                results["ceiling_end"]["gflops_per_s"]],
            "matmul_b256_gflops": results["ceiling_b256"]["gflops_per_s"],
            "anchor": anchor_info, "rows": rows, "targets": targets}


def markdown(s):
    f = lambda x, fmt: "—" if x is None else format(x, fmt)
    L = [f"# IQL gradient steps/s: rlx vs JAX-CORL ({s['started']})", "",
         f"Batch 256, 256×256 networks, {s['transitions']:,} synthetic hopper-shaped transitions, "
         f"{s['steps_per_seed']:,} gradient steps per seed. Only gradient steps are timed.", "",
         "| setting | gradient steps/s | steps/s incl. start-up | compile s | start-up s | GFLOP/s | FLOP utilisation "
         "| ratio to anchor (steady) | ratio to anchor (incl. start-up) |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in s["rows"]:
        L.append(f"| {r['setting']} | {r['steps_per_s']:,.0f} | {r['e2e_steps_per_s']:,.0f} | {r['compile_s']:.1f} | "
                 f"{r['startup_s']:.1f} | {f(r['gflops_per_s'], '.0f')} | "
                 f"{'—' if r['utilisation'] is None else format(100 * r['utilisation'], '.0f') + '%'} | "
                 f"{r['ratio_steady']:.2f}× | {r['ratio_e2e']:.2f}× |")
    L += ["", "Targets:", ""]
    for t in s["targets"]:
        v = t["value"]
        shown = "—" if v is None else (f"{100 * v:.0f}%" if "ceiling" in t["target"] else
                                       f"{v:.1f} s" if "compile" in t["target"] else f"{v:.2f}×")
        L.append(f"- {t['target']}: {shown} — {'met' if t['met'] else 'NOT met'}")
    a = s["anchor"]
    ceil0, ceil1 = s["matmul_ceiling_start_end_gflops"]
    rows = {r["key"]: r for r in s["rows"]}
    fl = lambda k: f(None if rows[k]["xla_flops_per_step"] is None else rows[k]["xla_flops_per_step"] / 1e6, ".0f")
    L += ["", "Notes:", ""]
    if a["measured"]:
        L.append(f"- Anchor: JAX-CORL's algos/iql.py (commit {str(s['raw']['jaxcorl'][0].get('anchor_commit'))[:7]}), "
                 "its own train-state creation and `IQL.update_n_times` (8 steps per jitted call), run by "
                 "anchor_jaxcorl_iql.py in its own venv with the same jax/jaxlib 0.10.2. "
                 f"8-seed aggregate: {a['seq8_how']}; total {a['seq8_wall_s']:.0f} s.")
        if a.get("error_after"):
            L.append(f"- A later anchor process failed: {a['error_after']}")
    else:
        L.append(f"- **The anchor was not measured in this run** ({a['why']}). Its rows are ANCHORS.md's numbers "
                 "from an earlier measurement on this project's machine (228 steps/s, compile 7 s, about 13 s of "
                 "start-up per process, 8 × 20k steps one after another in about 805 s; 132 GFLOP/s, 60–75% of the "
                 "170–215 GFLOP/s ceiling measured then); their start-up column is 13 + 7 s, and no utilisation is "
                 "computed against this run's ceiling.")
    L.append(f"- GFLOP/s: each program's own XLA FLOP count of one gradient step compiled alone (rlx "
             f"{fl('rlx_s1')} MFLOP, JAX-CORL {fl('anchor_s1')} MFLOP: the programs differ slightly, e.g. the "
             "anchor's value net has layer norm) × its steady gradient steps/s. Utilisation = GFLOP/s ÷ the "
             f"dense 256-wide matmul ceiling measured in this run ({ceil0:.0f} GFLOP/s at the start, {ceil1:.0f} at "
             f"the end; the higher, {s['matmul_ceiling_gflops']:.0f}, is used). At IQL's own shape a chain of "
             f"nothing but [256, 256] @ [256, 256] matmuls reaches {s['matmul_b256_gflops']:.0f} GFLOP/s here, "
             f"{100 * s['matmul_b256_gflops'] / s['matmul_ceiling_gflops']:.0f}% of that ceiling: the most any "
             "program of these layers could show.")
    L.append("- Start-up = process launch → ready to run the first gradient step (interpreter, imports, data, "
             "state, compile; rlx's also builds the brax:hopper env its agent evaluates on). Compile is also "
             "shown alone. Steady steps/s = median timed block of "
             f"{s['chunk']:,} steps (first excluded), summed over seeds; incl. start-up = seeds × steps ÷ "
             "(launch → last step); ratios of 1-seed rows are to the anchor's 1 seed, of 8-seed rows to its "
             "8 sequential processes.")
    def breakdown(r):
        marks = r.get("startup_breakdown_s") or {}
        prev, parts = 0.0, []
        for name, t in marks.items():
            parts.append(f"{name.replace('_', ' ')} +{t - prev:.1f}")
            prev = t
        return ", ".join(parts)

    L.append(f"- Start-up by phase (s): rlx 1 seed: {breakdown(s['raw']['rlx_s1'])}"
             + (f"; JAX-CORL seed 0: {breakdown(s['raw']['jaxcorl'][0])}" if s["raw"]["jaxcorl"] else "") + ".")
    lb = s["loadavg_start"]
    le = s["loadavg_end"]
    busy = lb[0] > 0.5 * (s["cpu_count"] or 1)
    L.append(f"- Load average (1/5/15 min) before: {lb[0]:.2f}/{lb[1]:.2f}/{lb[2]:.2f}, after: "
             f"{le[0]:.2f}/{le[1]:.2f}/{le[2]:.2f}, on {s['cpu_count']} CPUs; run took {s['duration_s'] / 60:.1f} min."
             + (" **The machine was busy before the run started: these numbers are not final.**" if busy else ""))
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    main()
