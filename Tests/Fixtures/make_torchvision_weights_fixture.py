"""Fixture for `segdist predict --weights` on torchvision's full-size segmentation models.

torchvision's own `deeplabv3_resnet50`, `fcn_resnet50`, `deeplabv3_mobilenet_v3_large` (21 classes,
aux head, as its pretrained VOC weights) and `lraspp_mobilenet_v3_large` are filled with weights from a formula that the Swift test computes too (integer
hash -> float32, below), so no 160 MB state_dict is committed: the test rebuilds it from
torchvision-state-dicts.json (torchvision-mobilenet-state-dicts.json) and this formula, runs `segdist predict --weights F --set model=M`
on `torchvision-predict.png`, and compares with torchvision's eval-mode softmax stored here.

    python -m venv venv && venv/bin/pip install torch torchvision safetensors numpy pillow
    venv/bin/python Tests/Fixtures/make_torchvision_weights_fixture.py

Writes Tests/Fixtures/torchvision-predict.png and torchvision-predict.safetensors.
"""
import math
import os

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from torchvision.models.segmentation import (deeplabv3_mobilenet_v3_large, deeplabv3_resnet50, fcn_resnet50,
                                             lraspp_mobilenet_v3_large)

here = os.path.dirname(os.path.abspath(__file__))
M64 = (1 << 64) - 1


def unit(t_index, count):
    """count float32 values in [-0.5, 0.5): 24 bits of a splitmix-style hash of (tensor, element)."""
    i = np.arange(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = i * np.uint64(0x9E3779B97F4A7C15) + np.uint64((t_index * 0xBF58476D1CE4E5B9) & M64)
        h ^= h >> np.uint64(31)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(29)
    return ((h >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24)) - np.float32(0.5)


def fill(model):
    """Every float tensor of the state_dict, in sorted-name order, from `unit`:
    conv weights x sqrt(1 / fan_in) / sqrt(1/12); batch-norm weight 1 + x/4, bias and running
    mean x/4, running var x + 1; conv biases x/4."""
    state = model.state_dict()
    out = {}
    for t, name in enumerate(sorted(state)):
        v = state[name]
        if not v.is_floating_point():
            out[name] = v.clone()
            continue
        x = unit(t, v.numel())
        if v.dim() == 4:
            scale = np.float32(math.sqrt(1.0 / (v.shape[1] * v.shape[2] * v.shape[3])) / math.sqrt(1.0 / 12.0))
            values = x * scale
        elif name.endswith("running_var"):
            values = x + np.float32(1)
        elif name.endswith(".weight"):
            values = np.float32(1) + x / np.float32(4)
        else:
            values = x / np.float32(4)
        out[name] = torch.from_numpy(values.astype(np.float32)).reshape(v.shape)
    model.load_state_dict(out)
    return model


rng = np.random.RandomState(7)
h, w = 40, 56
yy, xx = np.mgrid[0:h, 0:w]
pixels = np.stack([(xx * 4) % 256, (yy * 6) % 256, ((xx + yy) * 3) % 256], -1).astype(np.int64)
pixels = np.clip(pixels + rng.randint(-20, 21, pixels.shape), 0, 255).astype(np.uint8)
Image.fromarray(pixels).save(os.path.join(here, "torchvision-predict.png"))
x = torch.from_numpy(pixels).permute(2, 0, 1).float()[None] / 255
x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
expected = {}
for key, builder, extra in [("deeplabv3_resnet50", deeplabv3_resnet50, {"aux_loss": True}),
                            ("fcn_resnet50", fcn_resnet50, {"aux_loss": True}),
                            ("deeplabv3_mobilenet_v3_large", deeplabv3_mobilenet_v3_large, {"aux_loss": True}),
                            ("lraspp_mobilenet_v3_large", lraspp_mobilenet_v3_large, {})]:
    model = fill(builder(weights=None, weights_backbone=None, num_classes=21, **extra)).eval()
    with torch.no_grad():
        expected[key] = torch.softmax(model(x)["out"], 1)[0].contiguous()
    print(key, "max p", float(expected[key].max()), "classes present", int(expected[key].argmax(0).unique().numel()))
save_file(expected, os.path.join(here, "torchvision-predict.safetensors"), metadata={"torch": torch.__version__})
