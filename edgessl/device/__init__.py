"""The on-board check of a bundle (`edgessl-device`): numpy and one runtime, no torch, torchvision or timm.

Nothing here may import torch or a module of edgessl that does; tests/device runs it with those imports blocked.
"""
