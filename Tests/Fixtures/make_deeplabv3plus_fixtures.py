"""Fixtures for segdist's `deeplabv3plus`, made with segmentation_models_pytorch's own classes.

Run (torch, torchvision, segmentation-models-pytorch and safetensors from PyPI, in a venv):
    python Tests/Fixtures/make_deeplabv3plus_fixtures.py
Writes Tests/Fixtures/smp-deeplabv3plus.safetensors.

smp's `DeepLabV3Plus` always takes a full-width encoder, so the models here are smp's own
`DeepLabV3PlusDecoder` (output stride 16, separable ASPP 12/24/36, decoder_channels 4 x width)
and `SegmentationHead` (1x1, x4 upsampling) on torchvision's ResNet trunk at `width` stem
channels (torchvision's own ResNet._make_layer and blocks), dilated by smp's own
`replace_strides_with_dilation(layer4, 2)` — what smp's `make_dilated(16)` does to its ResNet
encoders — under smp's module names (`encoder.`, `decoder.`, `segmentation_head.`). Each case
CASE holds CASE.param.<name>, CASE.x, CASE.target, CASE.logits, CASE.loss (cross-entropy),
CASE.grad.<name> and CASE.after.<name> (running statistics after the training-mode step);
dropout is in eval mode.
"""
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file
from segmentation_models_pytorch.base import SegmentationHead
from segmentation_models_pytorch.decoders.deeplabv3.decoder import DeepLabV3PlusDecoder
from segmentation_models_pytorch.encoders._utils import replace_strides_with_dilation
from torchvision.models import resnet as tvr

torch.manual_seed(0)
torch.use_deterministic_algorithms(True)
here = os.path.dirname(os.path.abspath(__file__))
out, cases = {}, {}
classes = 3


class Encoder(nn.Module):
    """torchvision's ResNet trunk at `width` stem channels, returning smp's feature list."""

    def __init__(self, block, layers, width):
        super().__init__()
        m = tvr.ResNet.__new__(tvr.ResNet)
        nn.Module.__init__(m)
        m._norm_layer, m.inplanes, m.dilation, m.groups, m.base_width = nn.BatchNorm2d, width, 1, 1, 64
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = m._make_layer(block, width, layers[0])
        self.layer2 = m._make_layer(block, width * 2, layers[1], stride=2)
        self.layer3 = m._make_layer(block, width * 4, layers[2], stride=2)
        self.layer4 = m._make_layer(block, width * 8, layers[3], stride=2)
        replace_strides_with_dilation(self.layer4, 2)
        e = block.expansion
        self.out_channels = (3, width, width * e, width * 2 * e, width * 4 * e, width * 8 * e)

    def forward(self, x):
        s1 = self.relu(self.bn1(self.conv1(x)))
        s2 = self.layer1(self.maxpool(s1))
        s3 = self.layer2(s2)
        s4 = self.layer3(s3)
        return [x, s1, s2, s3, s4, self.layer4(s4)]


class Model(nn.Module):
    def __init__(self, block, layers, width):
        super().__init__()
        self.encoder = Encoder(block, layers, width)
        self.decoder = DeepLabV3PlusDecoder(encoder_channels=self.encoder.out_channels, encoder_depth=5, out_channels=4 * width,
                                            atrous_rates=(12, 24, 36), output_stride=16, aspp_separable=True, aspp_dropout=0.5)
        self.segmentation_head = SegmentationHead(in_channels=4 * width, out_channels=classes, kernel_size=1, upsampling=4)

    def forward(self, x):
        return self.segmentation_head(self.decoder(self.encoder(x)))


def case(name, model, depth, width, size=(64, 96)):
    model.train()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5); m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.1, 0.1); m.running_var.uniform_(0.8, 1.2)
        if isinstance(m, nn.Dropout):
            m.eval()
    for k, v in model.state_dict().items():
        out[f"{name}.param.{k}"] = v.detach().clone().contiguous()
    n = 4
    x = torch.randn(n, 3, *size) * torch.linspace(0.5, 2, n).view(n, 1, 1, 1) + torch.linspace(-2, 2, n).view(n, 1, 1, 1)
    target = torch.randint(0, classes, (n, *size))
    logits = model(x)
    loss = F.cross_entropy(logits, target)
    loss.backward()
    out[f"{name}.x"], out[f"{name}.target"] = x, target.float()
    out[f"{name}.logits"], out[f"{name}.loss"] = logits.detach().contiguous(), loss.detach().reshape([])
    for k, v in model.state_dict().items():
        if "running" in k:
            out[f"{name}.after.{k}"] = v.detach().clone().contiguous()
    for k, p in model.named_parameters():
        out[f"{name}.grad.{k}"] = p.grad.detach().clone().contiguous()
    cases[name] = {"op": "model", "model": "deeplabv3plus", "width": width, "depth": depth, "classes": classes, "loss": "ce"}


# Only the BasicBlock trunk: a Bottleneck ResNet-50 trunk at width 4, 8 or 16 is too
# ill-conditioned to compare here (PyTorch's own float32 and float64 logits differ by 6e-5 and
# its gradients by 5-8%); torchvision-models.safetensors checks the Bottleneck blocks.
case("deeplabv3plus_r18_w4", Model(tvr.BasicBlock, [2, 2, 2, 2], 4), 18, 4)
save_file(out, os.path.join(here, "smp-deeplabv3plus.safetensors"), metadata={"cases": json.dumps(cases), "torch": torch.__version__})
print("wrote", len(out), "tensors,", len(cases), "cases")

# --- smp's full-size DeepLabV3Plus on ResNet-50 and -18: state_dict names and shapes ---------------
import segmentation_models_pytorch as smp

names = {}
for encoder in ("resnet50", "resnet18"):
    m = smp.DeepLabV3Plus(encoder_name=encoder, encoder_weights=None, classes=21)
    names[f"deeplabv3plus_{encoder}"] = {k: list(v.shape) for k, v in m.state_dict().items()}
with open(os.path.join(here, "smp-deeplabv3plus-state-dicts.json"), "w") as f:
    json.dump(names, f, indent=0, sort_keys=True)
