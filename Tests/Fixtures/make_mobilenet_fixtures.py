"""Fixtures for segdist's MobileNetV3 models, made with torchvision's own classes.

Run (torch + torchvision + safetensors from PyPI, in a venv):
    python Tests/Fixtures/make_mobilenet_fixtures.py
Writes Tests/Fixtures/torchvision-mobilenet.safetensors (small-width models: one training-mode
forward and backward each) and torchvision-mobilenet-state-dicts.json (the full-size models'
state_dict names and shapes).

The models are torchvision's: `mobilenet_v3_large(width_mult=0.25, dilated=True).features` (as
`lraspp_mobilenet_v3_large` and `deeplabv3_mobilenet_v3_large` build it at width_mult 1) in an
IntermediateLayerGetter, torchvision's `LRASPP` (inter_channels 32 = 128 x 0.25), and
torchvision's `DeepLabV3` with DeepLabHead's own layers (torchvision's ASPP, conv3x3, BN, ReLU,
conv1x1) at 64 = 256 x 0.25 channels — segdist's `width: 4`. Each case CASE holds
CASE.param.<name>, CASE.x, CASE.target (class indices as floats), CASE.logits, CASE.loss
(cross-entropy), CASE.grad.<name> and the running statistics after the step CASE.after.<name>.
Dropout is put in eval mode (its masks are random).
"""
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file
from torchvision.models import mobilenet_v3_large
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large, lraspp_mobilenet_v3_large
from torchvision.models.segmentation.deeplabv3 import ASPP, DeepLabV3
from torchvision.models.segmentation.lraspp import LRASPP

torch.manual_seed(0)
torch.use_deterministic_algorithms(True)
here = os.path.dirname(os.path.abspath(__file__))
out, cases = {}, {}
width, classes = 4, 3
multiplier = width / 16


def randomise(module):
    """Non-trivial batch-norm parameters and statistics, and biases, so the test sees them."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.8, 1.2)
        if isinstance(m, nn.Dropout):
            m.eval()


def case(name, model, model_name, size=(64, 80)):
    model.train()
    randomise(model)
    for k, v in model.state_dict().items():
        out[f"{name}.param.{k}"] = v.detach().clone().contiguous()
    n = 4
    # images of clearly different brightness and contrast (ASPP's image pooling normalises one value per image)
    x = torch.randn(n, 3, *size) * torch.linspace(0.5, 2, n).view(n, 1, 1, 1) + torch.linspace(-2, 2, n).view(n, 1, 1, 1)
    target = torch.randint(0, classes, (n, *size))
    logits = model(x)["out"]
    loss = F.cross_entropy(logits, target)
    loss.backward()
    out[f"{name}.x"], out[f"{name}.target"] = x, target.float()
    out[f"{name}.logits"], out[f"{name}.loss"] = logits.detach().contiguous(), loss.detach().reshape([])
    for k, v in model.state_dict().items():
        if "running" in k:
            out[f"{name}.after.{k}"] = v.detach().clone().contiguous()
    for k, p in model.named_parameters():
        out[f"{name}.grad.{k}"] = p.grad.detach().clone().contiguous()
    cases[name] = {"op": "model", "model": model_name, "width": width, "classes": classes, "loss": "ce"}


def backbone(return_layers):
    features = mobilenet_v3_large(weights=None, width_mult=multiplier, dilated=True).features
    return features, IntermediateLayerGetter(features, return_layers=return_layers)


features, getter = backbone({"4": "low", "16": "high"})
case("lraspp_mnv3_w4", LRASPP(getter, features[4].out_channels, features[16].out_channels, classes, inter_channels=128 * width // 16),
     "lraspp_mobilenet_v3_large")

features, getter = backbone({"16": "out"})
channels = 256 * width // 16
head = nn.Sequential(ASPP(features[16].out_channels, [12, 24, 36], out_channels=channels),
                     nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(),
                     nn.Conv2d(channels, classes, 1))
case("deeplabv3_mnv3_w4", DeepLabV3(getter, head, None), "deeplabv3_mobilenet_v3_large")

# --- the ops on their own: F.conv2d(groups=), F.hardswish, F.hardsigmoid, the SE scaling --------
for name, (c, cout, groups, k, stride, pad, dil, h, w) in {
    "dwconv_k3s2p1_x2": (6, 12, 6, 3, 2, 1, 1, 9, 8),
    "dwconv_k5d2": (4, 4, 4, 5, 1, 4, 2, 10, 9),
    "gconv_g2": (4, 6, 2, 3, 1, 1, 1, 7, 7),
}.items():
    x = torch.randn(2, c, h, w, requires_grad=True)
    wt = torch.randn(cout, c // groups, k, k, requires_grad=True)
    b = torch.randn(cout, requires_grad=True)
    y = F.conv2d(x, wt, b, stride=stride, padding=pad, dilation=dil, groups=groups)
    dy = torch.randn_like(y)
    y.backward(dy)
    for key, v in {"x": x, "w": wt, "b": b, "y": y, "dy": dy, "dx": x.grad, "dw": wt.grad, "db": b.grad}.items():
        out[f"{name}.{key}"] = v.detach().clone().contiguous()
    cases[name] = {"op": "conv2d", "groups": groups, "stride": stride, "padding": pad, "dilation": dil}
for name, fn in {"hardswish": F.hardswish, "hardsigmoid": F.hardsigmoid}.items():
    x = torch.cat([torch.randn(60) * 3, torch.tensor([-3.0, 3.0, -2.9999, 2.9999, 0.0])]).requires_grad_()
    y = fn(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    for key, v in {"x": x, "y": y, "dy": dy, "dx": x.grad}.items():
        out[f"{name}.{key}"] = v.detach().clone().contiguous()
    cases[name] = {"op": name}
x = torch.randn(2, 3, 4, 5, requires_grad=True)
scale = torch.rand(2, 3, 1, 1, requires_grad=True)
y = scale * x
dy = torch.randn_like(y)
y.backward(dy)
for key, v in {"x": x, "s": scale, "y": y, "dy": dy, "dx": x.grad, "ds": scale.grad}.items():
    out[f"scale_channels.{key}"] = v.detach().clone().contiguous()
cases["scale_channels"] = {"op": "scale_channels"}

save_file(out, os.path.join(here, "torchvision-mobilenet.safetensors"), metadata={"cases": json.dumps(cases), "torch": torch.__version__})

names = {}
for key, builder, extra in [("lraspp_mobilenet_v3_large", lraspp_mobilenet_v3_large, {}),
                            ("deeplabv3_mobilenet_v3_large", deeplabv3_mobilenet_v3_large, {"aux_loss": True})]:
    m = builder(weights=None, weights_backbone=None, num_classes=21, **extra)
    names[key] = {k: list(v.shape) for k, v in m.state_dict().items()}
with open(os.path.join(here, "torchvision-mobilenet-state-dicts.json"), "w") as f:
    json.dump(names, f, indent=0, sort_keys=True)
print("wrote", len(out), "tensors,", len(cases), "cases")
