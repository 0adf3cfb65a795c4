"""PyTorch twins of rossl's encoders and probes, for re-checking rossl's numbers with other tools.

    from rossl_models import load_run
    model = load_run("runs/latest")   # encoder + linear-probe head, eval mode, loaded strictly

The modules use rossl's parameter names (`backbone.layer1.0.conv1.weight`, `pre_feature.0.weight`,
...), so `rossl export`'s file loads with `strict=True`; a probe file (`probe-linear-probe.safetensors`)
loads into `nn.Linear`. Inputs are images in [0, 1], with no normalisation outside the model.
"""
import tomllib
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class Backbone(nn.Module):
    """A CIFAR-style ResNet: 3x3 stride-1 stem, no max-pool, stages `layer1..layerN`."""

    def __init__(self, in_channels, widths, blocks):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        cin = widths[0]
        for stage, (width, count) in enumerate(zip(widths, blocks)):
            layer = []
            for b in range(count):
                layer.append(BasicBlock(cin, width, 2 if stage > 0 and b == 0 else 1))
                cin = width
            setattr(self, f"layer{stage + 1}", nn.Sequential(*layer))
        self.stages = len(widths)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        for stage in range(self.stages):
            x = getattr(self, f"layer{stage + 1}")(x)
        return x.mean((2, 3))


class Encoder(nn.Module):
    """rossl's ResNet encoder: backbone, `pre_feature` (the feature probes read), `projection`."""

    def __init__(self, in_channels, widths, blocks, hidden, z_dim):
        super().__init__()
        self.backbone = Backbone(in_channels, widths, blocks)
        self.pre_feature = nn.Sequential(nn.Linear(widths[-1], hidden), nn.BatchNorm1d(hidden), nn.ReLU())
        self.projection = nn.Sequential(
            nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, z_dim))

    def features(self, x):
        return self.pre_feature(self.backbone(x))

    def forward(self, x):
        return F.normalize(self.projection(self.features(x)), dim=1)


def encoder_from_config(name, params):
    """The encoder a run's `[encoder.<name>]` section describes."""
    if name == "resnet-small":
        widths = params["widths"]
        return Encoder(params["in_channels"], widths, [params["blocks"]] * len(widths),
                       params["hidden"], params["z_dim"])
    if name == "resnet18-cifar":
        return Encoder(params["in_channels"], [64, 128, 256, 512], [2, 2, 2, 2],
                       params["hidden"], params["z_dim"])
    raise ValueError(f"no PyTorch twin of the encoder `{name}`")


class Probed(nn.Module):
    """Encoder features, then a linear head: the classifier rossl's linear probes attack."""

    def __init__(self, encoder, head):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, x):
        return self.head(self.encoder.features(x))


def load_run(run_dir, evaluator="linear-probe", encoder_file="encoder.safetensors"):
    """The classifier of a run, in evaluation mode: its exported encoder (`rossl export`) and the
    linear head `evaluator` fitted (`probe-<evaluator>.safetensors`), both loaded strictly."""
    run_dir = Path(run_dir)
    config = tomllib.loads((run_dir / "config.toml").read_text())
    name = config["encoder"]["name"]
    in_channels = config["encoder"][name].get("in_channels", 0)
    params = dict(config["encoder"][name])
    if in_channels == 0:  # taken from the data: read it off the exported stem
        params["in_channels"] = load_file(run_dir / encoder_file)["backbone.conv1.weight"].shape[1]
    encoder = encoder_from_config(name, params)
    encoder.load_state_dict(load_file(run_dir / encoder_file), strict=True)
    head_state = load_file(run_dir / f"probe-{evaluator}.safetensors")
    classes, features = head_state["weight"].shape
    head = nn.Linear(features, classes)
    head.load_state_dict(head_state, strict=True)
    return Probed(encoder, head).eval()
