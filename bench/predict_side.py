"""segdist's prediction beside onnxruntime on the very model `segdist export` writes, interleaved
run by run on this machine.

Usage: python bench/predict_side.py [--runs 3] [--width 16] [--jobs folder768,one1024,tiled4096,bench1024] [--segdist PATH]
  folder768: `segdist predict` of a folder of 8 grey 768x768 PNGs, whole process, against
             onnxruntime loading the model and segmenting the same PNGs (read, run, argmax,
             mask PNG written) inside one Python process (interpreter start not counted).
  one1024:   the same for one 1024x1024 image.
  tiled4096: one 4096x4096 image: segdist predict in windows (--tile 1024, memory bounded)
             against onnxruntime on the whole image at once.
  bench1024: `segdist bench --inference --size 1024 --batch 1` (median forward pass + softmax)
             against onnxruntime's median session.run on the same size.
Needs torch (to write an untrained UNet state_dict in the lab's layout from
../shared/reference/torch_unet.py), safetensors, numpy, pillow and onnxruntime from PyPI.
Prints a Markdown table with seconds (or ms), peak RSS, the CPU and OPENBLAS_CORETYPE.
"""
import argparse, datetime, json, os, subprocess, sys, tempfile, time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
shared = os.environ.get("SEGDIST_SHARED", os.path.join(root, "..", "shared"))

# onnxruntime's side, run as its own process: load + segment every PNG given, print the seconds
ORT = r"""
import sys, time
t0 = time.perf_counter()
import numpy as np, onnxruntime as ort
from PIL import Image
model, out, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
t1 = time.perf_counter()
s = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
for i, p in enumerate(paths):
    x = np.asarray(Image.open(p), dtype=np.float32)[None, None]
    logits, = s.run(["logits"], {"image": x})
    Image.fromarray((logits[0].argmax(0) * 255).astype(np.uint8)).save(f"{out}/mask{i}.png")
print(f"seconds={time.perf_counter() - t1:.3f} import={t1 - t0:.3f}")
"""

ORT_BENCH = r"""
import sys, time, numpy as np, onnxruntime as ort
model, size, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
x = np.random.default_rng(0).uniform(0, 255, (1, 1, size, size)).astype(np.float32)
for _ in range(2): s.run(["probabilities"], {"image": x})
times = []
for _ in range(runs):
    t = time.perf_counter(); s.run(["probabilities"], {"image": x}); times.append(time.perf_counter() - t)
print(f"ms={sorted(times)[len(times) // 2] * 1000:.1f}")
"""


def timed(cmd):
    """(stdout, wall seconds, peak RSS MB) of one run under GNU time."""
    t = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout, wall, int(out.stderr.strip().splitlines()[-1]) / 1024


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--jobs", default="folder768,one1024,tiled4096,bench1024")
    p.add_argument("--segdist", default=os.path.join(root, ".build", "release", "segdist"))
    a = p.parse_args()
    import numpy as np, torch, onnxruntime
    from PIL import Image
    from safetensors.torch import save_file
    sys.path.insert(0, os.path.join(shared, "reference"))
    from torch_unet import UNet
    work = tempfile.mkdtemp(prefix="segdist-predict-side-")
    torch.manual_seed(0)
    weights, model = os.path.join(work, "unet.safetensors"), os.path.join(work, "unet.onnx")
    save_file({k: v.contiguous() for k, v in UNet(1, 2, a.width).state_dict().items()}, weights)
    subprocess.run([a.segdist, "export", "--weights", weights, "--output", model], check=True, capture_output=True)
    rng = np.random.default_rng(0)

    def images(name, count, side):
        folder = os.path.join(work, name)
        os.makedirs(folder, exist_ok=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (side, side), dtype=np.uint8)).save(os.path.join(folder, f"img{i}.png"))
        return folder

    jobs = {
        "folder768": ("folder of 8 grey 768x768 images", images("folder768", 8, 768), []),
        "one1024": ("one 1024x1024 image", images("one1024", 1, 1024), []),
        "tiled4096": ("one 4096x4096 image (segdist in 1024 windows, onnxruntime whole)", images("tiled4096", 1, 4096),
                      ["--tile", "1024"]),
    }
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"{datetime.date.today()}, {cpu}, {os.cpu_count()} CPUs, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}, "
          f"onnxruntime {onnxruntime.__version__}, UNet w={a.width} (untrained), {a.runs} interleaved runs each\n")
    print("| job | segdist | onnxruntime | ratio (onnxruntime time / segdist time, paired) | segdist peak RSS | onnxruntime peak RSS |")
    print("| --- | --- | --- | --- | --- | --- |")
    for job in a.jobs.split(","):
        ours, theirs, ratios, rss = [], [], [], ([], [])
        for _ in range(a.runs):
            if job == "bench1024":
                out, _, r0 = timed([a.segdist, "bench", "--inference", "--model", "unet", "--width", str(a.width), "--batch", "1",
                                    "--size", "1024", "--steps", "5"])
                s = json.loads(out.strip().splitlines()[-1])["ms_per_pass"] / 1000
                out, _, r1 = timed([sys.executable, "-c", ORT_BENCH, model, "1024", "5"])
                o = float(out.split("ms=")[1]) / 1000
            else:
                what, folder, extra = jobs[job]
                dest = os.path.join(work, job + "-out")
                _, s, r0 = timed([a.segdist, "predict", "--weights", weights, "--input", folder, "--output", dest,
                                  "--no-probabilities"] + extra)
                os.makedirs(dest + "-ort", exist_ok=True)
                paths = sorted(os.path.join(folder, f) for f in os.listdir(folder))
                out, _, r1 = timed([sys.executable, "-c", ORT, model, dest + "-ort"] + paths)
                o = float(out.split("seconds=")[1].split()[0])
            ours.append(s); theirs.append(o); ratios.append(o / s); rss[0].append(r0); rss[1].append(r1)
        what = "`segdist bench --inference` vs session.run, one 1024x1024 image (median pass)" if job == "bench1024" else \
            f"`segdist predict`, {jobs[job][0]} (whole process; onnxruntime load + runs)"
        span = lambda v: f"{min(v):.2f}-{max(v):.2f} s"
        print(f"| {what} | {span(ours)} | {span(theirs)} | {min(ratios):.2f}-{max(ratios):.2f}x | "
              f"{max(rss[0]):.0f} MB | {max(rss[1]):.0f} MB |", flush=True)
    print(f"\nsegdist: {a.segdist}; command: python bench/predict_side.py --runs {a.runs} --width {a.width} --jobs {a.jobs}")


if __name__ == "__main__":
    main()
