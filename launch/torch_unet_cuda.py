"""PyTorch CUDA's training step for the reference UNet (shared/reference/torch_unet.py, carried in
the pack by launch/pack-static.sh): fp32, eager, the same SGD step, BCE on 2 one-hot channels and
input as `segdist bench` times. Used by launch/gpu-check.sh beside `segdist bench --device cuda`.

    python3 launch/torch_unet_cuda.py PACK_DIR WIDTH BATCH SIZE [STEPS]
"""
import json
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, sys.argv[1])
from torch_unet import UNet  # noqa: E402  (the reference model, not a copy)

w, batch, size = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
steps = int(sys.argv[5]) if len(sys.argv) > 5 else 20
torch.backends.cudnn.benchmark = True
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.manual_seed(0)
model = UNet(1, 2, w).cuda()
opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
x = torch.rand(batch, 1, size, size, device="cuda")
y = (torch.rand(batch, 2, size, size, device="cuda") > 0.5).float()


def step():
    opt.zero_grad(set_to_none=True)
    F.binary_cross_entropy_with_logits(model(x), y).backward()
    opt.step()


for _ in range(5):
    step()
torch.cuda.synchronize()
t0 = time.perf_counter()
for _ in range(steps):
    step()
torch.cuda.synchronize()
dt = (time.perf_counter() - t0) / steps
print(json.dumps({"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0), "width": w, "batch": batch, "size": size,
                  "ms_per_step": round(dt * 1000, 3), "images_per_s": round(batch / dt, 1), "tf32": False}))
