"""Networks the learning rules train: ordinary ``nn.Module`` s that return logits (n, c).

The zoo: ``MLP`` (PEPITA's fully connected net, any depth), ``PepitaConvNet`` (PEPITA's
one-conv net), ``LeNet`` and ``LeNet4`` (LeNet-5 and GrAPE's shallow CNN), ``resnet20`` and
``resnet18`` (He et al. 2016), ``alexnet`` and ``vgg16`` for 32×32 images, and
``TinyTransformer`` for token sequences, and ``TransformerLM``, a causal language model.
``build_model`` builds them by name (``MODELS``) for a dataset's input shape.

Convention (what the rules' injection points and a user's own model rely on): a model exposes
``blocks: nn.ModuleList`` and ``head: nn.Module`` and its forward pass is exactly the blocks in
order, then the head::

    forward(x) = head(blocks[-1](... blocks[0](x)))

The stem is the first block; each residual ``BasicBlock`` or encoder layer is one block; in
LeNet/AlexNet/VGG each conv (+ BatchNorm) + ReLU (+ pool) group and each hidden FC + ReLU is one
block, the flatten sitting inside the first FC block; the head is the final classifier
(``Linear``, or pool + ``Linear``). ``MLP`` follows it after flattening: ``forward(x) =
head(blocks[-1](... blocks[0](flatten(x))))``; ``TransformerLM`` after embedding its token ids
(``embed``), its blocks being its layers. ``MLP`` and ``PepitaConvNet`` also describe their
weighted layers (``layer_specs()``, ``bpfree.models.spec``) for the rules that walk them without
autograd. Activations are ``nn.Module`` s, never in place,
and residual additions are out of place, so hooks and replaced layers see every op.
"""

from bpfree.models._common import he_uniform_
from bpfree.models.convnet import PepitaConvNet
from bpfree.models.lenet import LeNet, LeNet4
from bpfree.models.mlp import ACTIVATIONS, MLP, ActivityNorm
from bpfree.models.registry import MODELS, ModelSpec, build_model
from bpfree.models.resnet import BasicBlock, ResNet, resnet18, resnet20
from bpfree.models.spec import LayerSpec
from bpfree.models.transformer import (
    EncoderBlock,
    SelfAttention,
    TinyTransformer,
    TokenEmbedding,
    TokenMean,
)
from bpfree.models.transformer_lm import TransformerLM
from bpfree.models.vgg import PlainCNN, alexnet, vgg16

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "MODELS",
    "ActivityNorm",
    "BasicBlock",
    "EncoderBlock",
    "LayerSpec",
    "LeNet",
    "LeNet4",
    "ModelSpec",
    "PepitaConvNet",
    "PlainCNN",
    "ResNet",
    "SelfAttention",
    "TinyTransformer",
    "TokenEmbedding",
    "TokenMean",
    "TransformerLM",
    "alexnet",
    "build_model",
    "he_uniform_",
    "resnet18",
    "resnet20",
    "vgg16",
]
