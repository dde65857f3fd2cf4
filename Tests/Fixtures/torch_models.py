"""PyTorch definitions, from torch's and torchvision's own layers, of the segdist models that
torchvision does not ship as a class: PSPNet (hszhao/semseg's layout), FCN-8s (same-padding
variant on torchvision's VGG16-BN layers), the portrait UNet (mateuszbuda's, transposed-conv
upsampling) and the M2NIST FCN. make_model_fixtures.py builds its fixtures from them and
bench/torch_side.py times them beside segdist.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from collections import OrderedDict
from torchvision.models.vgg import make_layers


class PPM(nn.Module):
    def __init__(self, in_dim, reduction_dim, bins):
        super().__init__()
        self.features = nn.ModuleList([nn.Sequential(nn.AdaptiveAvgPool2d(b), nn.Conv2d(in_dim, reduction_dim, 1, bias=False),
                                                     nn.BatchNorm2d(reduction_dim), nn.ReLU(inplace=True)) for b in bins])

    def forward(self, x):
        return torch.cat([x] + [F.interpolate(f(x), x.shape[2:], mode="bilinear", align_corners=True) for f in self.features], 1)


class PSPNet(nn.Module):
    def __init__(self, backbone, features, aux_features, width, classes):
        super().__init__()
        self.backbone = backbone
        self.ppm = PPM(features, features // 4, (1, 2, 3, 6))
        self.cls = nn.Sequential(nn.Conv2d(2 * features, 8 * width, 3, padding=1, bias=False), nn.BatchNorm2d(8 * width),
                                 nn.ReLU(inplace=True), nn.Dropout(0.1), nn.Conv2d(8 * width, classes, 1))
        self.aux = nn.Sequential(nn.Conv2d(aux_features, 4 * width, 3, padding=1, bias=False), nn.BatchNorm2d(4 * width),
                                 nn.ReLU(inplace=True), nn.Dropout(0.1), nn.Conv2d(4 * width, classes, 1))

    def forward(self, x):
        f = self.backbone(x)
        size = x.shape[2:]
        up = lambda y: F.interpolate(y, size, mode="bilinear", align_corners=True)
        return {"out": up(self.cls(self.ppm(f["out"]))), "aux": up(self.aux(f["aux"]))}




class FCN8s(nn.Module):
    def __init__(self, width, classes):
        super().__init__()
        w = width
        self.features = make_layers([w, w, "M", 2 * w, 2 * w, "M", 4 * w, 4 * w, 4 * w, "M", 8 * w, 8 * w, 8 * w, "M",
                                     8 * w, 8 * w, 8 * w, "M"], batch_norm=True)
        self.fc6 = nn.Conv2d(8 * w, 64 * w, 7, padding=3)
        self.fc7 = nn.Conv2d(64 * w, 64 * w, 1)
        self.drop = nn.Dropout(0.5)
        self.score_fr = nn.Conv2d(64 * w, classes, 1)
        self.score_pool4 = nn.Conv2d(8 * w, classes, 1)
        self.score_pool3 = nn.Conv2d(4 * w, classes, 1)
        self.upscore2 = nn.ConvTranspose2d(classes, classes, 4, stride=2, padding=1, bias=False)
        self.upscore_pool4 = nn.ConvTranspose2d(classes, classes, 4, stride=2, padding=1, bias=False)
        self.upscore8 = nn.ConvTranspose2d(classes, classes, 16, stride=8, padding=4, bias=False)

    def forward(self, x):
        pools = []
        h = x
        for layer in self.features:
            h = layer(h)
            if isinstance(layer, nn.MaxPool2d):
                pools.append(h)
        h = self.drop(F.relu(self.fc6(h)))
        h = self.drop(F.relu(self.fc7(h)))
        h = self.upscore2(self.score_fr(h)) + self.score_pool4(pools[3])
        h = self.upscore_pool4(h) + self.score_pool3(pools[2])
        return self.upscore8(h)




class PortraitUNet(nn.Module):
    """mateuszbuda/brain-segmentation-pytorch's UNet (torch.hub), without its final sigmoid
    (segdist's losses take logits)."""

    def __init__(self, in_channels, out_channels, init_features):
        super().__init__()
        f = init_features
        self.encoder1 = self._block(in_channels, f, "enc1")
        self.pool1 = nn.MaxPool2d(2, 2)
        self.encoder2 = self._block(f, f * 2, "enc2")
        self.pool2 = nn.MaxPool2d(2, 2)
        self.encoder3 = self._block(f * 2, f * 4, "enc3")
        self.pool3 = nn.MaxPool2d(2, 2)
        self.encoder4 = self._block(f * 4, f * 8, "enc4")
        self.pool4 = nn.MaxPool2d(2, 2)
        self.bottleneck = self._block(f * 8, f * 16, "bottleneck")
        self.upconv4 = nn.ConvTranspose2d(f * 16, f * 8, kernel_size=2, stride=2)
        self.decoder4 = self._block(f * 16, f * 8, "dec4")
        self.upconv3 = nn.ConvTranspose2d(f * 8, f * 4, kernel_size=2, stride=2)
        self.decoder3 = self._block(f * 8, f * 4, "dec3")
        self.upconv2 = nn.ConvTranspose2d(f * 4, f * 2, kernel_size=2, stride=2)
        self.decoder2 = self._block(f * 4, f * 2, "dec2")
        self.upconv1 = nn.ConvTranspose2d(f * 2, f, kernel_size=2, stride=2)
        self.decoder1 = self._block(f * 2, f, "dec1")
        self.conv = nn.Conv2d(f, out_channels, kernel_size=1)

    def forward(self, x):
        enc1 = self.encoder1(x)
        enc2 = self.encoder2(self.pool1(enc1))
        enc3 = self.encoder3(self.pool2(enc2))
        enc4 = self.encoder4(self.pool3(enc3))
        bottleneck = self.bottleneck(self.pool4(enc4))
        dec4 = self.decoder4(torch.cat((self.upconv4(bottleneck), enc4), dim=1))
        dec3 = self.decoder3(torch.cat((self.upconv3(dec4), enc3), dim=1))
        dec2 = self.decoder2(torch.cat((self.upconv2(dec3), enc2), dim=1))
        dec1 = self.decoder1(torch.cat((self.upconv1(dec2), enc1), dim=1))
        return self.conv(dec1)

    @staticmethod
    def _block(in_channels, features, name):
        return nn.Sequential(OrderedDict([
            (name + "conv1", nn.Conv2d(in_channels, features, kernel_size=3, padding=1, bias=False)),
            (name + "norm1", nn.BatchNorm2d(features)), (name + "relu1", nn.ReLU(inplace=True)),
            (name + "conv2", nn.Conv2d(features, features, kernel_size=3, padding=1, bias=False)),
            (name + "norm2", nn.BatchNorm2d(features)), (name + "relu2", nn.ReLU(inplace=True))]))


class M2NISTFCN(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Conv2d(8, 32, 1), nn.ReLU(), nn.Conv2d(32, classes, 1))
        self.upsample = nn.Sequential(nn.ConvTranspose2d(classes, classes, 4, stride=2), nn.ConvTranspose2d(classes, classes, 6, stride=2))

    def forward(self, x):
        return self.upsample(self.classifier(self.encoder(x)))
