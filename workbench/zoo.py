"""Efficient architectures in plain torch (no torchvision): MobileNetV2, MobileNetV3-small, SqueezeNet,
ShuffleNetV2, an EfficientNet-Lite-style net, a small MobileViT-style net and DS-CNN for keyword spotting.

Every builder takes ``num_classes``, ``in_channels`` and a ``width`` multiplier; the input resolution is
free (global pooling before the classifier), with a default per architecture. They serve as
distillation students and as starting points trained on the user's data.
"""

from __future__ import annotations

from torch import nn


def _ch(value: float, divisor: int = 8) -> int:
    """Round a scaled channel count to a multiple of ``divisor`` (never below it)."""
    return max(divisor, int(value + divisor / 2) // divisor * divisor)


class ConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: type | None = nn.ReLU6):
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act is not None:
            layers.append(act())
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, reduced, 1)
        self.fc2 = nn.Conv2d(reduced, channels, 1)

    def forward(self, x):
        return x * nn.functional.hardsigmoid(self.fc2(nn.functional.relu(self.fc1(self.pool(x)))))


class InvertedResidual(nn.Module):
    """MobileNetV2/V3 block: expand 1×1, depthwise k×k, (squeeze-excite), project 1×1; residual if shapes match."""

    def __init__(
        self, cin: int, cout: int, stride: int, expand: float, k: int = 3, se: bool = False, act: type = nn.ReLU6
    ) -> None:
        super().__init__()
        hidden = _ch(cin * expand)
        layers: list[nn.Module] = []
        if hidden != cin:
            layers.append(ConvBN(cin, hidden, 1, act=act))
        layers.append(ConvBN(hidden, hidden, k, stride, groups=hidden, act=act))
        if se:
            layers.append(SqueezeExcite(hidden, _ch(hidden / 4)))
        layers.append(ConvBN(hidden, cout, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.block(x) if self.residual else self.block(x)


def _classifier_net(
    stem: nn.Module,
    body: nn.Module,
    channels: int,
    num_classes: int,
    hidden: int | None = None,
    act: type = nn.ReLU6,
    dropout: float = 0.2,
) -> nn.Module:
    head: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if hidden:
        head += [nn.Linear(channels, hidden), act()]
        channels = hidden
    head += [nn.Dropout(dropout), nn.Linear(channels, num_classes)]
    return nn.Sequential(stem, body, nn.Sequential(*head))


def mobilenet_v2(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> nn.Module:
    config = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    cin = _ch(32 * width)
    blocks: list[nn.Module] = []
    for expand, c, repeats, stride in config:
        cout = _ch(c * width)
        for i in range(repeats):
            blocks.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expand))
            cin = cout
    last = _ch(1280 * max(1.0, width))
    blocks.append(ConvBN(cin, last, 1))
    return _classifier_net(ConvBN(in_channels, _ch(32 * width), 3, 2), nn.Sequential(*blocks), last, num_classes)


def mobilenet_v3_small(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> nn.Module:
    # (kernel, expansion size, out, squeeze-excite, hard-swish, stride)
    config = [
        (3, 16, 16, True, False, 2),
        (3, 72, 24, False, False, 2),
        (3, 88, 24, False, False, 1),
        (5, 96, 40, True, True, 2),
        (5, 240, 40, True, True, 1),
        (5, 240, 40, True, True, 1),
        (5, 120, 48, True, True, 1),
        (5, 144, 48, True, True, 1),
        (5, 288, 96, True, True, 2),
        (5, 576, 96, True, True, 1),
        (5, 576, 96, True, True, 1),
    ]
    cin = _ch(16 * width)
    blocks: list[nn.Module] = []
    for k, exp, c, se, hs, stride in config:
        cout = _ch(c * width)
        blocks.append(
            InvertedResidual(cin, cout, stride, _ch(exp * width) / cin, k, se, nn.Hardswish if hs else nn.ReLU)
        )
        cin = cout
    last = _ch(576 * width)
    blocks.append(ConvBN(cin, last, 1, act=nn.Hardswish))
    stem = ConvBN(in_channels, _ch(16 * width), 3, 2, act=nn.Hardswish)
    return _classifier_net(stem, nn.Sequential(*blocks), last, num_classes, hidden=1024, act=nn.Hardswish)


class Fire(nn.Module):
    def __init__(self, cin: int, squeeze: int, expand: int) -> None:
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(cin, squeeze, 1), nn.ReLU(inplace=True))
        self.expand1 = nn.Sequential(nn.Conv2d(squeeze, expand, 1), nn.ReLU(inplace=True))
        self.expand3 = nn.Sequential(nn.Conv2d(squeeze, expand, 3, padding=1), nn.ReLU(inplace=True))

    def forward(self, x):
        import torch

        x = self.squeeze(x)
        return torch.cat([self.expand1(x), self.expand3(x)], 1)


def squeezenet(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> nn.Module:
    w = lambda c: _ch(c * width)  # noqa: E731 - local shorthand
    fires = [
        (96, 16, 64),
        (128, 16, 64),
        "pool",
        (128, 32, 128),
        (256, 32, 128),
        "pool",
        (256, 48, 192),
        (384, 48, 192),
        (384, 64, 256),
        (512, 64, 256),
    ]
    layers: list[nn.Module] = [nn.Conv2d(in_channels, w(96), 3, 2, 1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
    cin = w(96)
    for spec in fires:
        if spec == "pool":
            layers.append(nn.MaxPool2d(3, 2, 1))
            continue
        _, squeeze, expand = spec
        layers.append(Fire(cin, w(squeeze), w(expand)))
        cin = 2 * w(expand)
    # No ReLU on the class map (unlike the paper): with it, training from scratch often dies at chance level.
    head = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(cin, num_classes, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    net = nn.Sequential(nn.Sequential(*layers), head)
    # Without batch norm, SqueezeNet only trains from scratch with ReLU-aware init (as the reference does).
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_uniform_(module.weight)
            nn.init.zeros_(module.bias)
    nn.init.normal_(head[1].weight, 0.0, 0.01)
    return net


def _channel_shuffle(x, groups: int):
    batch, channels, height, width = x.shape
    return (
        x.view(batch, groups, channels // groups, height, width).transpose(1, 2).reshape(batch, channels, height, width)
    )


class ShuffleUnit(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        branch = cout // 2
        if stride > 1:
            self.left = nn.Sequential(
                ConvBN(cin, cin, 3, stride, groups=cin, act=None), ConvBN(cin, branch, 1, act=nn.ReLU)
            )
        right_in = cin if stride > 1 else branch
        self.right = nn.Sequential(
            ConvBN(right_in, branch, 1, act=nn.ReLU),
            ConvBN(branch, branch, 3, stride, groups=branch, act=None),
            ConvBN(branch, branch, 1, act=nn.ReLU),
        )

    def forward(self, x):
        import torch

        if self.stride == 1:
            left, right = x.chunk(2, dim=1)
            out = torch.cat([left, self.right(right)], 1)
        else:
            out = torch.cat([self.left(x), self.right(x)], 1)
        return _channel_shuffle(out, 2)


def shufflenet_v2(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> nn.Module:
    stages = [_ch(116 * width, 4), _ch(232 * width, 4), _ch(464 * width, 4)]
    cin = 24
    blocks: list[nn.Module] = []
    for cout, repeats in zip(stages, (4, 8, 4), strict=True):
        for i in range(repeats):
            blocks.append(ShuffleUnit(cin, cout, 2 if i == 0 else 1))
            cin = cout
    last = 1024 if width <= 1.0 else 2048
    blocks.append(ConvBN(cin, last, 1, act=nn.ReLU))
    stem = nn.Sequential(ConvBN(in_channels, 24, 3, 2, act=nn.ReLU), nn.MaxPool2d(3, 2, 1))
    return _classifier_net(stem, nn.Sequential(*blocks), last, num_classes, dropout=0.0)


def efficientnet_lite(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> nn.Module:
    """EfficientNet-Lite0-style: MBConv blocks, ReLU6, no squeeze-excite (quantization friendly)."""
    config = [
        (1, 16, 1, 1, 3),
        (6, 24, 2, 2, 3),
        (6, 40, 2, 2, 5),
        (6, 80, 3, 2, 3),
        (6, 112, 3, 1, 5),
        (6, 192, 4, 2, 5),
        (6, 320, 1, 1, 3),
    ]
    cin = 32
    blocks: list[nn.Module] = []
    for expand, c, repeats, stride, k in config:
        cout = _ch(c * width)
        for i in range(repeats):
            blocks.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expand, k))
            cin = cout
    blocks.append(ConvBN(cin, 1280, 1))
    return _classifier_net(ConvBN(in_channels, 32, 3, 2), nn.Sequential(*blocks), 1280, num_classes)


class _Attention(nn.Module):
    """Plain multi-head self-attention (no fused kernels), so every exporter handles it."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.out = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        weights = (q @ k.transpose(-2, -1) * (d // self.heads) ** -0.5).softmax(dim=-1)
        return self.out((weights @ v).transpose(1, 2).reshape(b, n, d))


class _TransformerLayer(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.attention = nn.LayerNorm(dim), _Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 2), nn.SiLU(), nn.Linear(dim * 2, dim))

    def forward(self, x):
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MobileViTBlock(nn.Module):
    """Local conv features, then a transformer over patches for global context, then fuse back."""

    def __init__(self, channels: int, dim: int, depth: int = 2, patch: int = 2, heads: int = 2) -> None:
        super().__init__()
        self.patch = patch
        self.local = nn.Sequential(ConvBN(channels, channels, 3, act=nn.SiLU), nn.Conv2d(channels, dim, 1))
        self.transformer = nn.Sequential(*[_TransformerLayer(dim, heads) for _ in range(depth)])
        self.project = ConvBN(dim, channels, 1, act=nn.SiLU)
        self.fuse = ConvBN(2 * channels, channels, 3, act=nn.SiLU)

    def forward(self, x):
        import torch

        y = self.local(x)
        b, d, h, w = y.shape
        p = self.patch
        tokens = (
            y.reshape(b, d, h // p, p, w // p, p).permute(0, 3, 5, 2, 4, 1).reshape(b * p * p, (h // p) * (w // p), d)
        )
        tokens = self.transformer(tokens)
        y = tokens.reshape(b, p, p, h // p, w // p, d).permute(0, 5, 3, 1, 4, 2).reshape(b, d, h, w)
        return self.fuse(torch.cat([x, self.project(y)], 1))


def mobilevit_small(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> nn.Module:
    c = [_ch(v * width) for v in (16, 32, 48, 64, 80)]
    body = nn.Sequential(
        InvertedResidual(c[0], c[1], 2, 4, act=nn.SiLU),
        InvertedResidual(c[1], c[2], 2, 4, act=nn.SiLU),
        MobileViTBlock(c[2], _ch(64 * width)),
        InvertedResidual(c[2], c[3], 2, 4, act=nn.SiLU),
        MobileViTBlock(c[3], _ch(80 * width)),
        ConvBN(c[3], c[4] * 4, 1, act=nn.SiLU),
    )
    return _classifier_net(ConvBN(in_channels, c[0], 3, 2, act=nn.SiLU), body, c[4] * 4, num_classes, dropout=0.1)


def ds_cnn(num_classes: int = 12, in_channels: int = 1, width: float = 1.0) -> nn.Module:
    """DS-CNN (Zhang et al., Hello Edge) for keyword spotting on MFCC maps (default input 1×49×10)."""
    c = _ch(64 * width)
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, c, (10, 4), (2, 2), (5, 1), bias=False),
        nn.BatchNorm2d(c),
        nn.ReLU(),
    ]
    for _ in range(4):
        layers += [ConvBN(c, c, 3, groups=c, act=nn.ReLU), ConvBN(c, c, 1, act=nn.ReLU)]
    return nn.Sequential(
        nn.Sequential(*layers), nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))
    )
