"""Time to pooled foreground Dice 0.95 on the default recipe, segdist beside PyTorch, per seed.

Usage: python bench/time_to_dice.py [--seeds 0,1,2] [--steps 350] [--segdist PATH]
Both sides train the lab's UNet (width 16, batch 8, 128 px, SGD lr 1e-3 momentum 0.9, weight
decay 5e-4, BCE) and evaluate 50 fixed validation images every 50 steps; PyTorch's side is
../shared/reference/torch_train.py (its own data stream), segdist's `segdist --set seed=S --set
eval_every=50` (validation time included on both sides). Prints, per seed, the first evaluation
at or above 0.95: its step and the wall time, and the sums over the seeds.
"""
import argparse, json, os, re, subprocess, sys, tempfile

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
reference = os.path.join(os.environ.get("SEGDIST_SHARED", os.path.join(root, "..", "shared")), "reference")


def segdist(binary, seed, steps):
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([binary, "--ranks", "1", "--set", f"seed={seed}", "--set", "eval_every=50", "--set", "steps_per_epoch=50",
                        "--set", f"epochs={steps // 50}", "--set", f"checkpoint_dir={d}/run"], check=True, capture_output=True)
        for line in open(f"{d}/run/metrics.jsonl"):
            r = json.loads(line)
            if r.get("kind") == "eval" and r["pooled_foreground_dice"] >= 0.95:
                return r["step"], r["elapsed_s"]
    return None, None


def torch(seed, steps):
    out = subprocess.run([sys.executable, os.path.join(reference, "torch_train.py"), "16", "8", str(steps), "128", "20"],
                         env={**os.environ, "SEED": str(seed)}, cwd=reference, capture_output=True, text=True, check=True).stdout
    for m in re.finditer(r"step (\d+) loss \S+ fg_dice (\S+) t=(\d+)s", out):
        if float(m.group(2)) >= 0.95:
            return int(m.group(1)), float(m.group(3))
    return None, None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=350)
    p.add_argument("--segdist", default=os.path.join(root, ".build", "release", "segdist"))
    a = p.parse_args()
    print("| seed | segdist step / seconds | PyTorch step / seconds |\n| --- | --- | --- |")
    total = [0.0, 0.0]
    for seed in map(int, a.seeds.split(",")):
        s, t = segdist(a.segdist, seed, a.steps), torch(seed, a.steps)
        total = [total[0] + (s[1] or float("nan")), total[1] + (t[1] or float("nan"))]
        f = lambda r: f"{r[0]} / {r[1]:.1f} s" if r[0] else "not reached"
        print(f"| {seed} | {f(s)} | {f(t)} |", flush=True)
    print(f"| sum | {total[0]:.1f} s | {total[1]:.1f} s |  ratio {total[0] / total[1]:.2f}")


if __name__ == "__main__":
    main()
