"""The PyTorch side of bench/side_by_side.py for models the shared reference scripts do not
cover: torchvision's MobileNetV3 models and segmentation_models_pytorch's DeepLabV3Plus, one
training step (CE, SGD) or one evaluation-mode forward pass, timed as torch_unet.py times
(warm-up first: oneDNN's first steps are slow).

Usage: torch_side.py train|infer MODEL BATCH SIZE
  MODEL: lraspp_mobilenet_v3_large, deeplabv3_mobilenet_v3_large (torchvision), deeplabv3plus
  (smp, resnet50 encoder, output stride 16). Prints img/s=... and ms/img=...
"""
import sys, time, warnings
import torch, torch.nn.functional as F
warnings.simplefilter("ignore")
mode, name, B, H = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.manual_seed(0)
if name == "deeplabv3plus":
    import segmentation_models_pytorch as smp
    net = smp.DeepLabV3Plus(encoder_name="resnet50", encoder_weights=None, classes=2)
    model = lambda x: net(x)
else:
    import torchvision.models.segmentation as seg
    net = getattr(seg, name)(weights=None, weights_backbone=None, num_classes=2)
    model = lambda x: net(x)["out"]
x = torch.rand(B, 3, H, H); y = torch.randint(0, 2, (B, H, H))
if mode == "train":
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    def step():
        loss = F.cross_entropy(model(x), y)
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
