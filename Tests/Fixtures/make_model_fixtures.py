"""Fixtures for segdist's ResNet-backbone models, made with torchvision's own classes.

Run (torch + torchvision + safetensors from PyPI, in a venv):
    python Tests/Fixtures/make_model_fixtures.py
Writes Tests/Fixtures/torchvision-models.safetensors and torchvision-state-dicts.json.

Each case CASE holds CASE.param.<name> (the module's state_dict before the step), CASE.x, the
outputs, the loss (or the seed gradient CASE.dy for blocks: loss = sum(y * dy)), every
parameter gradient CASE.grad.<name>, and the running statistics after the training-mode
forward CASE.after.<name>. Dropout layers are put in eval mode (identity): their masks are
random and not part of what is compared.
"""
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file
from torchvision.models import resnet as tvr
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation import deeplabv3_resnet50, fcn_resnet50
from torchvision.models.segmentation.deeplabv3 import ASPP, DeepLabV3
from torchvision.models.segmentation.fcn import FCN, FCNHead

from torch_models import M2NISTFCN, PSPNet, FCN8s, PortraitUNet  # torch_models.py, beside this script

torch.manual_seed(0)
torch.use_deterministic_algorithms(True)
out = {}
cases = {}
here = os.path.dirname(os.path.abspath(__file__))


def randomise_bn(module):
    """Non-trivial affine parameters and running statistics, so the test sees them."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.8, 1.2)


def no_dropout(module):
    for m in module.modules():
        if isinstance(m, nn.Dropout):
            m.eval()


def record_params(case, module):
    for k, v in module.state_dict().items():
        out[f"{case}.param.{k}"] = v.detach().clone().contiguous()


def record_after(case, module):
    for k, v in module.state_dict().items():
        if "running" in k:
            out[f"{case}.after.{k}"] = v.detach().clone().contiguous()
    for k, p in module.named_parameters():
        out[f"{case}.grad.{k}"] = p.grad.detach().clone().contiguous()


def block_case(case, module, x_shape, meta):
    module.train()
    randomise_bn(module)
    no_dropout(module)
    record_params(case, module)
    x = torch.randn(*x_shape, requires_grad=True)
    y = module(x)
    dy = torch.randn_like(y)
    (y * dy).sum().backward()
    out[f"{case}.x"] = x.detach().clone()
    out[f"{case}.y"] = y.detach().clone().contiguous()
    out[f"{case}.dy"] = dy
    out[f"{case}.dx"] = x.grad.detach().clone()
    record_after(case, module)
    cases[case] = meta


# --- max pooling with padding and ceil_mode --------------------------------------------------
for name, (k, s, p, ceil, h, w) in {
    "maxpool_k3s2p1": (3, 2, 1, False, 9, 8),
    "maxpool_k2s2_ceil": (2, 2, 0, True, 7, 5),
    "maxpool_k3s2p1_ceil": (3, 2, 1, True, 8, 7),
}.items():
    x = torch.randn(2, 3, h, w, requires_grad=True)
    y = F.max_pool2d(x, k, s, p, ceil_mode=ceil)
    dy = torch.randn_like(y)
    y.backward(dy)
    out[f"{name}.x"], out[f"{name}.y"], out[f"{name}.dy"], out[f"{name}.dx"] = x.detach(), y.detach(), dy, x.grad
    cases[name] = {"op": "max_pool2d", "kernel": k, "stride": s, "padding": p, "ceil_mode": ceil}

# --- cross-entropy with class weights and ignored pixels ------------------------------------------
logits = torch.randn(2, 4, 5, 6, requires_grad=True)
target = torch.randint(0, 4, (2, 5, 6))
target[0, 1, :3] = -100
weight = torch.tensor([0.5, 1.0, 2.0, 4.0])
loss = F.cross_entropy(logits, target, weight=weight, ignore_index=-100)
loss.backward()
out["ce_weighted.logits"], out["ce_weighted.target"], out["ce_weighted.weight"] = logits.detach(), target.float(), weight
out["ce_weighted.loss"], out["ce_weighted.dlogits"] = loss.detach().reshape([]), logits.grad
cases["ce_weighted"] = {"op": "cross_entropy", "ignore_index": -100}

# --- torchvision's blocks at small channel counts --------------------------------------------
def downsample(cin, cout, stride):
    return nn.Sequential(tvr.conv1x1(cin, cout, stride), nn.BatchNorm2d(cout))

block_case("basic_s2", tvr.BasicBlock(8, 16, stride=2, downsample=downsample(8, 16, 2)), (2, 8, 9, 9),
           {"op": "block", "kind": "basic", "inplanes": 8, "planes": 16, "stride": 2, "dilation": 1})
block_case("basic_identity", tvr.BasicBlock(8, 8), (2, 8, 6, 6),
           {"op": "block", "kind": "basic", "inplanes": 8, "planes": 8, "stride": 1, "dilation": 1})
block_case("bottleneck_s2", tvr.Bottleneck(8, 4, stride=2, downsample=downsample(8, 16, 2)), (2, 8, 9, 9),
           {"op": "block", "kind": "bottleneck", "inplanes": 8, "planes": 4, "stride": 2, "dilation": 1})
block_case("bottleneck_dilated", tvr.Bottleneck(16, 4, dilation=2), (2, 16, 7, 7),
           {"op": "block", "kind": "bottleneck", "inplanes": 16, "planes": 4, "stride": 1, "dilation": 2})
block_case("aspp", ASPP(8, [1, 2, 3], out_channels=4), (2, 8, 6, 5),
           {"op": "aspp", "in_channels": 8, "rates": [1, 2, 3], "out_channels": 4})
block_case("fcn_head", FCNHead(8, 3), (2, 8, 5, 6), {"op": "fcn_head", "in_channels": 8, "classes": 3})


# --- whole small models ----------------------------------------------------------------------
def tiny_resnet(block, layers, width, dilate):
    """torchvision's ResNet trunk with `width` stem channels instead of 64, built by
    torchvision's own ResNet._make_layer and blocks."""
    m = tvr.ResNet.__new__(tvr.ResNet)
    nn.Module.__init__(m)
    m._norm_layer, m.inplanes, m.dilation, m.groups, m.base_width = nn.BatchNorm2d, width, 1, 1, 64
    m.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
    m.bn1 = nn.BatchNorm2d(width)
    m.relu = nn.ReLU(inplace=True)
    m.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    m.layer1 = m._make_layer(block, width, layers[0])
    m.layer2 = m._make_layer(block, width * 2, layers[1], stride=2, dilate=dilate[0])
    m.layer3 = m._make_layer(block, width * 4, layers[2], stride=2, dilate=dilate[1])
    m.layer4 = m._make_layer(block, width * 8, layers[3], stride=2, dilate=dilate[2])
    return m


def model_case(case, model, classes, meta, size=64, aux_weight=0.5):
    model.train()
    randomise_bn(model)
    no_dropout(model)
    record_params(case, model)
    # Four images of clearly different brightness and contrast: with two near-identical images
    # ASPP's image-pooling BN (one value per image) made PyTorch's own float32 and float64
    # gradients differ by 100%.
    n = 4
    x = torch.randn(n, 3, size, size) * torch.linspace(0.5, 2, n).view(n, 1, 1, 1) + torch.linspace(-2, 2, n).view(n, 1, 1, 1)
    target = torch.randint(0, classes, (n, size, size))
    result = model(x)
    loss = F.cross_entropy(result["out"], target) + aux_weight * F.cross_entropy(result["aux"], target)
    loss.backward()
    out[f"{case}.x"], out[f"{case}.target"] = x, target.float()
    out[f"{case}.logits"] = result["out"].detach().contiguous()
    out[f"{case}.aux_logits"] = result["aux"].detach().contiguous()
    out[f"{case}.loss"] = loss.detach().reshape([])
    record_after(case, model)
    meta["aux_weight"] = aux_weight
    cases[case] = meta


width, classes = 4, 3
backbone = tiny_resnet(tvr.Bottleneck, [3, 4, 6, 3], width, [False, True, True])
getter = IntermediateLayerGetter(backbone, return_layers={"layer4": "out", "layer3": "aux"})
# DeepLabHead's own layers (ASPP, conv3x3, BN, ReLU, conv1x1) with 4 x width channels instead of 256
head = nn.Sequential(ASPP(width * 32, [12, 24, 36], out_channels=4 * width),
                     nn.Conv2d(4 * width, 4 * width, 3, padding=1, bias=False), nn.BatchNorm2d(4 * width), nn.ReLU(),
                     nn.Conv2d(4 * width, classes, 1))
models = {}
models["deeplabv3_r50_w4"] = DeepLabV3(getter, head, FCNHead(width * 16, classes))
model_case("deeplabv3_r50_w4", models["deeplabv3_r50_w4"], classes,
           {"op": "model", "head": "deeplabv3", "depth": 50, "width": width, "classes": classes})

backbone = tiny_resnet(tvr.BasicBlock, [2, 2, 2, 2], width, [False, False, False])
getter = IntermediateLayerGetter(backbone, return_layers={"layer4": "out", "layer3": "aux"})
head = nn.Sequential(ASPP(width * 8, [12, 24, 36], out_channels=4 * width),
                     nn.Conv2d(4 * width, 4 * width, 3, padding=1, bias=False), nn.BatchNorm2d(4 * width), nn.ReLU(),
                     nn.Conv2d(4 * width, classes, 1))
models["deeplabv3_r18_w4"] = DeepLabV3(getter, head, FCNHead(width * 4, classes))
model_case("deeplabv3_r18_w4", models["deeplabv3_r18_w4"], classes,
           {"op": "model", "head": "deeplabv3", "depth": 18, "width": width, "classes": classes})

backbone = tiny_resnet(tvr.BasicBlock, [2, 2, 2, 2], width, [False, False, False])
getter = IntermediateLayerGetter(backbone, return_layers={"layer4": "out", "layer3": "aux"})
models["fcn_r18_w4"] = FCN(getter, FCNHead(width * 8, classes), FCNHead(width * 4, classes))
model_case("fcn_r18_w4", models["fcn_r18_w4"], classes,
           {"op": "model", "head": "fcn", "depth": 18, "width": width, "classes": classes})

# --- PSPNet (hszhao/semseg's layout, torch's own layers) on torchvision's ResNet-18 trunk --------
backbone = tiny_resnet(tvr.BasicBlock, [2, 2, 2, 2], width, [False, False, False])
getter = IntermediateLayerGetter(backbone, return_layers={"layer4": "out", "layer3": "aux"})
models["pspnet_r18_w4"] = PSPNet(getter, width * 8, width * 4, width, classes)
model_case("pspnet_r18_w4", models["pspnet_r18_w4"], classes,
           {"op": "model", "head": "pspnet", "depth": 18, "width": width, "classes": classes}, size=128, aux_weight=0.4)


# --- FCN-8s (same-padding variant) on torchvision's own VGG16-BN layers (make_layers, cfg "D") --
plain_case_deferred = ("fcn8s_w4", FCN8s(4, 3))


# --- the portrait UNet and the M2NIST FCN (torch's own layers, composed as their sources do) ----
def plain_case(case, model, x, target, loss_fn, meta):
    model.train()
    no_dropout(model)
    randomise_bn(model)
    record_params(case, model)
    logits = model(x)
    loss = loss_fn(logits, target)
    loss.backward()
    out[f"{case}.x"], out[f"{case}.target"] = x, target.float()
    out[f"{case}.logits"] = logits.detach().contiguous()
    out[f"{case}.loss"] = loss.detach().reshape([])
    record_after(case, model)
    cases[case] = meta


one_hot = lambda t, k: F.one_hot(t, k).permute(0, 3, 1, 2).float()
t = torch.randint(0, 2, (2, 32, 32))
plain_case("unet_tconv_w4", PortraitUNet(3, 2, 4), torch.randn(2, 3, 32, 32), t,
           lambda y, t: F.binary_cross_entropy_with_logits(y, one_hot(t, 2)),
           {"op": "model", "model": "unet_tconv", "width": 4, "classes": 2, "loss": "bce"})
name, fcn8s = plain_case_deferred
t = torch.randint(0, 3, (2, 64, 64))
plain_case(name, fcn8s, torch.randn(2, 3, 64, 64), t, F.cross_entropy,
           {"op": "model", "model": "fcn8s", "width": 4, "classes": 3, "loss": "ce"})
t = torch.randint(0, 11, (2, 64, 84))
plain_case("fcn_m2nist", M2NISTFCN(11), torch.rand(2, 1, 64, 84), t, F.cross_entropy,
           {"op": "model", "model": "fcn_m2nist", "width": 0, "classes": 11, "loss": "ce"})


def conditioning(case, model):
    """Largest relative difference between PyTorch's float32 and float64 gradients: how much
    float rounding alone moves this case (the Swift tests' tolerance must be above it)."""
    state = {k[len(case) + 7:]: v for k, v in out.items() if k.startswith(case + ".param.")}
    grads = {}
    for dtype in (torch.float32, torch.float64):
        m = model.to(dtype)
        m.load_state_dict(state)
        m.train()
        no_dropout(m)
        m.zero_grad()
        r = m(out[case + ".x"].to(dtype))
        t = out[case + ".target"].long()
        (F.cross_entropy(r["out"], t) + cases[case]["aux_weight"] * F.cross_entropy(r["aux"], t)).backward()
        grads[dtype] = {k: p.grad.double().clone() for k, p in m.named_parameters()}
    m.float()
    worst = sorted((((grads[torch.float32][k] - g).abs().max() / g.abs().max()).item(), k) for k, g in grads[torch.float64].items())
    return worst[-1][0]


for case, model in models.items():
    cases[case]["float32_vs_float64"] = conditioning(case, model)
    print(case, "float32 vs float64 gradients:", cases[case]["float32_vs_float64"])

save_file(out, os.path.join(here, "torchvision-models.safetensors"), metadata={"cases": json.dumps(cases),
          "torch": torch.__version__})

# --- full-size state_dict names and shapes ---------------------------------------------------
names = {}
for key, builder in {"deeplabv3_resnet50": deeplabv3_resnet50, "fcn_resnet50": fcn_resnet50}.items():
    m = builder(weights=None, weights_backbone=None, num_classes=21, aux_loss=True)
    names[key] = {k: list(v.shape) for k, v in m.state_dict().items()}
from torchvision.models import vgg16_bn
names["vgg16_bn_features"] = {k: list(v.shape) for k, v in vgg16_bn(weights=None).state_dict().items() if k.startswith("features.")}
with open(os.path.join(here, "torchvision-state-dicts.json"), "w") as f:
    json.dump(names, f, indent=0, sort_keys=True)
print("wrote", len(out), "tensors,", len(cases), "cases")
