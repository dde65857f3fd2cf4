"""The PyTorch side of bench/side_by_side.py for models the shared reference scripts do not
cover: torchvision's MobileNetV3 models, DeepLabV3 with its aux head, segmentation_models_pytorch's
DeepLabV3Plus, and PSPNet, FCN-8s, the portrait UNet and the M2NIST FCN as
Tests/Fixtures/torch_models.py defines them from torch's own layers — one training step (CE,
SGD; aux heads weighted 0.5 / 0.4 as segdist weights them) or one evaluation-mode forward pass,
timed as torch_unet.py times (warm-up first: oneDNN's first steps are slow).

Usage: torch_side.py train|infer MODEL BATCH SIZE [WIDTH]
  MODEL: lraspp_mobilenet_v3_large, deeplabv3_mobilenet_v3_large, deeplabv3_resnet50_aux
  (torchvision), deeplabv3plus (smp, resnet50 encoder, output stride 16), pspnet (ResNet-50,
  dilated, output stride 8, aux head), fcn8s, unet_tconv, fcn_m2nist (square images, as segdist
  bench's). WIDTH: the first level's channels (pspnet: torchvision's 64 only). Prints img/s=... and ms/img=...
"""
import os, sys, time, warnings
import torch, torch.nn.functional as F
warnings.simplefilter("ignore")
mode, name, B, H = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
width = int(sys.argv[5]) if len(sys.argv) > 5 else None
torch.manual_seed(0)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Tests", "Fixtures"))
channels, W, aux = 3, H, None   # aux: (weight of the auxiliary logits) for models that train with one
if name == "deeplabv3plus":
    import segmentation_models_pytorch as smp
    net = smp.DeepLabV3Plus(encoder_name="resnet50", encoder_weights=None, classes=2)
    outputs = lambda x: [net(x)]
elif name == "pspnet":
    from torchvision.models import resnet50
    from torchvision.models._utils import IntermediateLayerGetter
    from torch_models import PSPNet
    w = width or 64
    trunk = resnet50(weights=None, replace_stride_with_dilation=[False, True, True])
    if w != 64:
        sys.exit("pspnet: only torchvision's width (64) here")
    getter = IntermediateLayerGetter(trunk, return_layers={"layer4": "out", "layer3": "aux"})
    net = PSPNet(getter, 32 * w, 16 * w, w, 2)
    aux = 0.4
    outputs = lambda x: (lambda o: [o["out"], o["aux"]])(net(x))
elif name in ("fcn8s", "unet_tconv", "fcn_m2nist"):
    from torch_models import FCN8s, PortraitUNet, M2NISTFCN
    channels = 1
    if name == "fcn8s":
        net, channels = FCN8s(width or 8, 2), 3   # torchvision's VGG layers take RGB

    elif name == "unet_tconv":
        net = PortraitUNet(1, 2, width or 32)
    else:
        net = M2NISTFCN(2)   # square like segdist bench (64 x 64 decodes back to 64 x 64)
    outputs = lambda x: [net(x)]
else:
    import torchvision.models.segmentation as seg
    with_aux = name.endswith("_aux")
    net = getattr(seg, name.removesuffix("_aux"))(weights=None, weights_backbone=None, num_classes=2, aux_loss=with_aux or None)
    aux = 0.5 if with_aux else None
    outputs = lambda x: (lambda o: [o["out"]] + ([o["aux"]] if with_aux else []))(net(x))
model = lambda x: outputs(x)[0]
x = torch.rand(B, channels, H, W); y = torch.randint(0, 2, (B, H, W))
if mode == "train":
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    def step():
        o = outputs(x)
        loss = F.cross_entropy(o[0], y) + (aux * F.cross_entropy(o[1], y) if aux else 0)
        opt.zero_grad(); loss.backward(); opt.step()
    warm, n = 3, 5
else:
    net.eval()
    def step():
        with torch.no_grad():
            torch.softmax(model(x), 1)
    warm, n = 3, 10
for _ in range(warm): step()
t0 = time.perf_counter()
for _ in range(n): step()
dt = (time.perf_counter() - t0) / n
print(f"torch {mode} {name} B={B} H={H} step={dt*1000:.1f}ms img/s={B/dt:.2f} ms/img={dt*1000/B:.2f}")
