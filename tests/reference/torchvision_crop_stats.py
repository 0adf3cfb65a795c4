# Reference values for tests/data.rs, computed with torchvision (not a dependency of rossl):
#   pip install torch torchvision && python tests/reference/torchvision_crop_stats.py
# torchvision 0.29.2 / torch 2.15 printed:
#   mean area 0.4904, below a quarter 0.2124, log ratio mean -0.0002 sd 0.1610
#
# torchvision's RandomResizedCrop.get_params on a 32x32 image, scale (0.08, 1), ratio (3/4, 4/3):
# the statistics that tests/data.rs::crops_follow_torchvision_s_distribution compares against.
import math
import warnings

warnings.filterwarnings("ignore")
import torch
from torchvision.transforms import RandomResizedCrop

torch.manual_seed(0)
img = torch.zeros(3, 32, 32)
n = 200_000
area = small = 0
logs = []
for _ in range(n):
    i, j, h, w = RandomResizedCrop.get_params(img, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3))
    a = h * w / 1024
    area += a
    small += a < 0.25
    logs.append(math.log(w / h))
m = sum(logs) / n
sd = (sum((l - m) ** 2 for l in logs) / n) ** 0.5
print(f"mean area {area / n:.4f}, below a quarter {small / n:.4f}, log ratio mean {m:.4f} sd {sd:.4f}")
