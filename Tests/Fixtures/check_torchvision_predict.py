"""Manual end-to-end check: a full-size torchvision model's state_dict runs in `segdist predict
--weights` and gives torchvision's probabilities. Needs torch, torchvision, safetensors, numpy and
Pillow (PyPI) and a release build; not part of `swift test` (which never needs Python).

    python Tests/Fixtures/check_torchvision_predict.py [.build/release/segdist]

torchvision's pretrained weights cannot be fetched here, so the model is randomly initialised,
with non-trivial batch-norm statistics; the inputs are normalised with ImageNet's mean and std.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torchvision
from PIL import Image
from safetensors.torch import save_file

binary = sys.argv[1] if len(sys.argv) > 1 else ".build/release/segdist"
torch.manual_seed(0)
mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
work = tempfile.mkdtemp()
worst = 0.0
for name, builder in [("deeplabv3_resnet50", torchvision.models.segmentation.deeplabv3_resnet50),
                      ("fcn_resnet50", torchvision.models.segmentation.fcn_resnet50)]:
    model = builder(weights=None, weights_backbone=None, num_classes=21, aux_loss=True).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1); m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5); m.bias.uniform_(-0.1, 0.1)
    weights = os.path.join(work, name + ".safetensors")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, weights)
    pixels = (np.random.RandomState(1).rand(96, 128, 3) * 255).astype(np.uint8)
    image = os.path.join(work, "image.png")
    Image.fromarray(pixels).save(image)
    x = (torch.from_numpy(pixels).permute(2, 0, 1).float() / 255 - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    with torch.no_grad():
        want = torch.softmax(model(x[None])["out"], 1)[0].numpy()
    out = os.path.join(work, name)
    subprocess.run([binary, "predict", "--weights", weights, "--input", image, "--output", out,
                    "--set", f"model={name}", "--set", "width=64", "--set", "classes=21", "--set", "in_channels=3",
                    "--set", "aux_loss=true", "--set", "loss=ce", "--set", "data=rgb_shapes",
                    "--set", "normalize_mean=" + ", ".join(map(str, mean)), "--set", "normalize_std=" + ", ".join(map(str, std))],
                   check=True)
    got = np.load(os.path.join(out, "probabilities.npy"))
    d = float(np.abs(got - want).max())
    same = float((got.argmax(0) == want.argmax(0)).mean())
    print(f"{name}: max |p_segdist - p_torchvision| = {d:.2e}, same arg-max class on {same:.4%} of pixels")
    worst = max(worst, d)
sys.exit(0 if worst < 1e-3 else 1)
