"""segdist bench beside PyTorch/torchvision, interleaved run by run on this machine.

Usage: python bench/side_by_side.py [--runs 3] [--jobs unet16,unet32,unet64,deeplabv3,fcn] [--segdist PATH]
  more jobs: lraspp, deeplabv3_mnv3, deeplabv3plus, deeplabv3_aux, pspnet, fcn8s, unet_tconv,
  fcn_m2nist (training), lraspp_infer, deeplabv3_mnv3_infer
  (segdist bench --inference against evaluation-mode PyTorch); bench/torch_side.py needs
  segmentation-models-pytorch for deeplabv3plus.
Needs torch (and torchvision for the ResNet models) from PyPI; the PyTorch side is
../shared/reference/torch_unet.py and torch_tv.py (SEGDIST_SHARED points elsewhere). Prints a
Markdown table: images/s and peak RSS of each run, segdist's and PyTorch's, the machine, the date
and OPENBLAS_CORETYPE as the environment has it.
"""
import argparse, datetime, json, os, platform, re, subprocess, sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
shared = os.environ.get("SEGDIST_SHARED", os.path.join(root, "..", "shared"))
reference = os.path.join(shared, "reference")

# name: (what, segdist bench arguments, PyTorch command)
JOBS = {
    "unet16": ("UNet w=16, batch 8, 128 px", ["--model", "unet", "--width", "16", "--batch", "8", "--size", "128"],
               ["torch_unet.py", "16", "8", "128"]),
    "unet32": ("UNet w=32, batch 8, 128 px", ["--model", "unet", "--width", "32", "--batch", "8", "--size", "128"],
               ["torch_unet.py", "32", "8", "128"]),
    "unet64": ("UNet w=64 (the lab's), batch 4, 128 px", ["--model", "unet", "--width", "64", "--batch", "4", "--size", "128", "--steps", "5"],
               ["torch_unet.py", "64", "4", "128"]),
    "deeplabv3": ("deeplabv3_resnet50, width 64, batch 4, 128 px, no aux head",
                  ["--model", "deeplabv3_resnet50", "--width", "64", "--batch", "4", "--size", "128", "--steps", "3"],
                  ["torch_tv.py", "deeplabv3_resnet50", "4", "128", "2"]),
    "fcn": ("fcn_resnet50, width 64, batch 4, 128 px, no aux head",
            ["--model", "fcn_resnet50", "--width", "64", "--batch", "4", "--size", "128", "--steps", "3"],
            ["torch_tv.py", "fcn_resnet50", "4", "128", "2"]),
    "lraspp": ("lraspp_mobilenet_v3_large (torchvision's width), batch 8, 128 px",
               ["--model", "lraspp_mobilenet_v3_large", "--width", "16", "--batch", "8", "--size", "128", "--steps", "5"],
               ["+torch_side.py", "train", "lraspp_mobilenet_v3_large", "8", "128"]),
    "deeplabv3_mnv3": ("deeplabv3_mobilenet_v3_large (torchvision's width), batch 8, 128 px, no aux head",
                       ["--model", "deeplabv3_mobilenet_v3_large", "--width", "16", "--batch", "8", "--size", "128", "--steps", "5"],
                       ["+torch_side.py", "train", "deeplabv3_mobilenet_v3_large", "8", "128"]),
    "deeplabv3plus": ("deeplabv3plus ResNet-50 (smp's width), batch 4, 128 px",
                      ["--model", "deeplabv3plus", "--width", "64", "--batch", "4", "--size", "128", "--steps", "3"],
                      ["+torch_side.py", "train", "deeplabv3plus", "4", "128"]),
    "deeplabv3_aux": ("deeplabv3_resnet50, width 64, batch 4, 128 px, with the aux head (weight 0.5)",
                      ["--model", "deeplabv3_resnet50", "--width", "64", "--batch", "4", "--size", "128", "--steps", "3", "--aux"],
                      ["+torch_side.py", "train", "deeplabv3_resnet50_aux", "4", "128"]),
    "pspnet": ("pspnet, dilated ResNet-50 at torchvision's width, batch 4, 128 px, aux head (weight 0.4)",
               ["--model", "pspnet", "--width", "64", "--batch", "4", "--size", "128", "--steps", "3", "--aux"],
               ["+torch_side.py", "train", "pspnet", "4", "128"]),
    "fcn8s": ("fcn8s (VGG16-BN at the recipe's width 8), batch 8, 128 px",
              ["--model", "fcn8s", "--width", "8", "--batch", "8", "--size", "128", "--steps", "5"],
              ["+torch_side.py", "train", "fcn8s", "8", "128", "8"]),
    "unet_tconv": ("unet_tconv (the portrait UNet, init_features 32), batch 8, 128 px",
                   ["--model", "unet_tconv", "--width", "32", "--batch", "8", "--size", "128", "--steps", "5"],
                   ["+torch_side.py", "train", "unet_tconv", "8", "128", "32"]),
    "fcn_m2nist": ("fcn_m2nist, batch 32, 64 px",
                   ["--model", "fcn_m2nist", "--width", "8", "--batch", "32", "--size", "64", "--steps", "10"],
                   ["+torch_side.py", "train", "fcn_m2nist", "32", "64"]),
    "lraspp_infer": ("inference: lraspp_mobilenet_v3_large, 4 images of 512 px (images/s)",
                     ["--model", "lraspp_mobilenet_v3_large", "--width", "16", "--batch", "4", "--size", "512", "--steps", "5", "--inference"],
                     ["+torch_side.py", "infer", "lraspp_mobilenet_v3_large", "4", "512"]),
    "deeplabv3_mnv3_infer": ("inference: deeplabv3_mobilenet_v3_large, 4 images of 512 px (images/s)",
                             ["--model", "deeplabv3_mobilenet_v3_large", "--width", "16", "--batch", "4", "--size", "512", "--steps", "5", "--inference"],
                             ["+torch_side.py", "infer", "deeplabv3_mobilenet_v3_large", "4", "512"]),
}


def timed(cmd):
    """(stdout, peak RSS in MB) of one run under GNU time."""
    out = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    rss = int(out.stderr.strip().splitlines()[-1]) / 1024
    return out.stdout, rss


def segdist_run(binary, args):
    out, rss = timed([binary, "bench"] + args)
    result = json.loads(out.strip().splitlines()[-1])
    return result["images_per_s"], rss, result["kernels"]


def torch_run(cmd):
    # "+script" is one of bench/'s own scripts, else the shared reference's
    script = os.path.join(root, "bench", cmd[0][1:]) if cmd[0].startswith("+") else os.path.join(reference, cmd[0])
    out, rss = timed([sys.executable, script] + cmd[1:])
    return float(re.search(r"img/s=([0-9.]+)", out).group(1)), rss


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--jobs", default="unet16,unet32,unet64,deeplabv3,fcn")
    p.add_argument("--segdist", default=os.path.join(root, ".build", "release", "segdist"))
    a = p.parse_args()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    import torch
    print(f"{datetime.date.today()}, {cpu}, {os.cpu_count()} CPUs, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}, "
          f"torch {torch.__version__}, {a.runs} interleaved runs each (PyTorch warmed up)\n")
    print("| job | segdist images/s | PyTorch images/s | ratio (paired) | segdist peak RSS | PyTorch peak RSS |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in a.jobs.split(","):
        what, sargs, targs = JOBS[name]
        s, t, kernels = [], [], ""
        for _ in range(a.runs):
            ips, rss, kernels = segdist_run(a.segdist, sargs); s.append((ips, rss))
            ips, rss = torch_run(targs); t.append((ips, rss))
        ratios = [x[0] / y[0] for x, y in zip(s, t)]
        f = lambda v: f"{min(v):.1f}-{max(v):.1f}" if len(v) > 1 else f"{v[0]:.1f}"
        print(f"| {what} | {f([x[0] for x in s])} | {f([x[0] for x in t])} | {f(ratios)}x | "
              f"{max(x[1] for x in s):.0f} MB | {max(x[1] for x in t):.0f} MB |", flush=True)
    print(f"\nsegdist kernels: {kernels}; command: python bench/side_by_side.py --runs {a.runs} --jobs {a.jobs}")


if __name__ == "__main__":
    main()
