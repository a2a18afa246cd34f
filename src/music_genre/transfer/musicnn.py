"""MusiCNN (Pons & Serra, 2019) rebuilt natively in Keras 3, loaded from the TF1 checkpoint.

musicnn's own code builds its graph with ``tf.compat.v1.layers``, which Keras 3 no longer
provides. This module rebuilds ``musicnn/models.py:build_musicnn`` (num_filt_frontend 1.6,
num_filt_midend 64, num_units_backend 200, front-end ``7774timbraltemporal``) from standard
Keras layers only, and copies the checkpoint variables into it. The result is an ordinary Keras
model: ``model.save("x.keras")`` / ``keras.models.load_model`` work without custom objects.

Shapes, for an input patch of T frames × 96 mel bands (T = 187 for the 3 s musicnn was trained
on; any T ≥ 1 works because nothing depends on it):

* input BatchNorm on the single channel (TF1 ``batch_normalization``);
* timbral front end: time-padded 3+3, Conv2D 204×(7×38) and 204×(7×67), ReLU, BN, max over
  frequency → (T, 204) each;
* temporal front end: Conv2D 51×(128×1), 51×(64×1), 51×(32×1), "same", ReLU, BN, max over
  frequency → (T, 51) each; all five concatenated → (T, 561);
* mid end: three Conv1D 64×7 (TF1 used Conv2D with a kernel as wide as the input, which is a
  1-D convolution), ReLU, BN, the 2nd and 3rd residual; dense-connected: front end + the three
  outputs → (T, 753);
* back end: max and mean over time, interleaved exactly like TF1's ``concat(..., 2)`` +
  ``flatten`` (max₀, mean₀, max₁, mean₁, ...) → 1506, BN, Dropout .5, Dense 200 ReLU, BN
  (**the 200-d penultimate "embedding"**), Dropout .5, Dense 50, sigmoid (**the tags**).

TF1 ``batch_normalization`` defaults equal Keras's (axis −1, epsilon 1e-3, momentum 0.99), and
the checkpoint's moving mean/variance are used at inference. Verified against the original TF1
graph (``tests/transfer/test_transfer_musicnn.py`` runs the ``.meta`` graph from the checkpoint).
"""

from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from keras import layers  # noqa: E402

from music_genre.transfer.weights import checkpoint_prefix  # noqa: E402

N_MELS = 96
N_FRAMES = 187  # 3 s at 16 kHz, hop 256 (musicnn's training patch length)
EMBEDDING_DIM = 200

#: musicnn/configuration.py MSD_LABELS: the 50 most frequent Last.fm tags of the MSD.
MSD_TAGS = [
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists",
    "classic rock", "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill",
    "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic", "experimental",
    "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy",
    "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop",
    "sad", "House", "happy",
]  # fmt: skip

#: musicnn/configuration.py MTT_LABELS: the 50 MagnaTagATune tags.
MTT_TAGS = [
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
    "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
    "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice",
    "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello", "no voice",
    "weird", "country", "metal", "female voice", "choral",
]  # fmt: skip

TAGS = {"MSD_musicnn": MSD_TAGS, "MTT_musicnn": MTT_TAGS, "MSD_vgg": MSD_TAGS, "MTT_vgg": MTT_TAGS}

#: Width of each network's ``embedding`` output (musicnn: the penultimate dense layer; vgg:
#: the flattened last pooling layer, musicnn's ``pool5`` feature, 2 time steps × 128 filters).
EMBEDDING_DIMS = {"MSD_musicnn": 200, "MTT_musicnn": 200, "MSD_vgg": 256, "MTT_vgg": 256}

#: Keras layer name -> TF1 variable scope in the checkpoint (creation order in models.py).
CHECKPOINT_MAP = {
    "input_bn": "batch_normalization",
    "timbral74_conv": "conv2d",
    "timbral74_bn": "batch_normalization_1",
    "timbral77_conv": "conv2d_1",
    "timbral77_bn": "batch_normalization_2",
    "temporal128_conv": "conv2d_2",
    "temporal128_bn": "batch_normalization_3",
    "temporal64_conv": "conv2d_3",
    "temporal64_bn": "batch_normalization_4",
    "temporal32_conv": "conv2d_4",
    "temporal32_bn": "batch_normalization_5",
    "midend1_conv": "conv2d_5",
    "midend1_bn": "batch_normalization_6",
    "midend2_conv": "conv2d_6",
    "midend2_bn": "batch_normalization_7",
    "midend3_conv": "conv2d_7",
    "midend3_bn": "batch_normalization_8",
    "pool_bn": "batch_normalization_9",
    "penultimate_dense": "dense",
    "penultimate_bn": "batch_normalization_10",
    "logits": "dense_1",
}

#: The vgg models (musicnn/models.py ``vgg``, 128 filters): Keras layer -> TF1 scope.
VGG_CHECKPOINT_MAP = {
    "input_bn": "batch_normalization",
    **{f"vgg{i}_conv": f"{i}CNN" for i in range(1, 6)},
    **{f"vgg{i}_bn": f"batch_normalization_{i}" for i in range(1, 6)},
    "logits": "dense",
}

_BN_EPS = 1e-3  # tf.compat.v1.layers.batch_normalization default


def _bn(name: str) -> layers.BatchNormalization:
    return layers.BatchNormalization(axis=-1, epsilon=_BN_EPS, momentum=0.99, name=name)


def _freq_max(x, width: int, channels: int, name: str):
    """Max over the whole (remaining) frequency axis: (B, T, width, C) -> (B, T, C)."""
    x = layers.MaxPooling2D(pool_size=(1, width), strides=(1, width), name=f"{name}_pool")(x)
    return layers.Reshape((-1, channels), name=f"{name}_squeeze")(x)


def build_musicnn(
    n_mels: int = N_MELS,
    num_classes: int = 50,
    num_filt_frontend: float = 1.6,
    num_filt_midend: int = 64,
    num_units_backend: int = 200,
    name: str = "musicnn",
) -> keras.Model:
    """The untrained MusiCNN graph: (B, T, n_mels) log-mel patches -> ``[tags, embedding]``."""
    x_in = keras.Input(shape=(None, n_mels), name="logmel", dtype="float32")
    x = layers.Reshape((-1, n_mels, 1), name="expand")(x_in)
    x = _bn("input_bn")(x)

    # --- front end: timbral (vertical) and temporal (horizontal) filters ---
    padded = layers.ZeroPadding2D(padding=((3, 3), (0, 0)), name="timbral_pad")(x)
    front = []
    for tag, frac in (("74", 0.4), ("77", 0.7)):
        width = int(frac * n_mels)
        filters = int(num_filt_frontend * 128)
        f = layers.Conv2D(filters, (7, width), padding="valid", activation="relu",
                          name=f"timbral{tag}_conv")(padded)  # fmt: skip
        f = _bn(f"timbral{tag}_bn")(f)
        front.append(_freq_max(f, n_mels - width + 1, filters, f"timbral{tag}"))
    for length in (128, 64, 32):
        filters = int(num_filt_frontend * 32)
        s = layers.Conv2D(filters, (length, 1), padding="same", activation="relu",
                          name=f"temporal{length}_conv")(x)  # fmt: skip
        s = _bn(f"temporal{length}_bn")(s)
        front.append(_freq_max(s, n_mels, filters, f"temporal{length}"))
    frontend = layers.Concatenate(axis=-1, name="frontend")(front)  # (B, T, 561)

    # --- mid end: 1-D convolutions over time, residual, dense connections ---
    h = frontend
    mids = []
    for i in (1, 2, 3):
        p = layers.ZeroPadding1D(padding=(3, 3), name=f"midend{i}_pad")(h)
        c = layers.Conv1D(num_filt_midend, 7, padding="valid", activation="relu",
                          name=f"midend{i}_conv")(p)  # fmt: skip
        c = _bn(f"midend{i}_bn")(c)
        h = c if i == 1 else layers.Add(name=f"midend{i}_res")([c, h])
        mids.append(h)
    midend = layers.Concatenate(axis=-1, name="midend")([frontend, *mids])  # (B, T, 753)
    n_feat = int(frontend.shape[-1]) + 3 * num_filt_midend

    # --- back end: temporal pooling, dense ---
    mx = layers.GlobalMaxPooling1D(name="max_pool")(midend)
    mean = layers.GlobalAveragePooling1D(name="mean_pool")(midend)
    mx = layers.Reshape((n_feat, 1), name="max_pool_col")(mx)
    mean = layers.Reshape((n_feat, 1), name="mean_pool_col")(mean)
    pooled = layers.Concatenate(axis=-1, name="pool_pairs")([mx, mean])
    pooled = layers.Flatten(name="pool_flat")(pooled)  # max0, mean0, max1, mean1, ...
    pooled = _bn("pool_bn")(pooled)
    pooled = layers.Dropout(0.5, name="pool_dropout")(pooled)
    dense = layers.Dense(num_units_backend, activation="relu", name="penultimate_dense")(pooled)
    embedding = _bn("penultimate_bn")(dense)
    out = layers.Dropout(0.5, name="penultimate_dropout")(embedding)
    logits = layers.Dense(num_classes, name="logits")(out)
    tags = layers.Activation("sigmoid", name="tags")(logits)
    embedding = layers.Identity(name="embedding")(embedding)
    return keras.Model(x_in, [tags, embedding], name=name)


#: (pool size, strides) of the five max-pooling layers (time, frequency), read from each
#: checkpoint's ``.meta`` graph. MTT_vgg is ``models.py:vgg`` as published; the shipped MSD_vgg
#: graph pools differently from that code (4×1/4×1, then 1×4/1×4), to the same 2×1×128 output.
VGG_POOLS = {
    "MTT_vgg": (((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)),
                ((4, 4), (4, 4))),
    "MSD_vgg": (((4, 1), (4, 1)), ((1, 4), (1, 4)), ((2, 2), (2, 2)), ((2, 2), (2, 2)),
                ((4, 4), (4, 4))),
}  # fmt: skip


def build_vgg(
    pools=VGG_POOLS["MTT_vgg"], n_mels: int = N_MELS, n_frames: int = N_FRAMES,
    num_classes: int = 50, num_filters: int = 128, name: str = "vgg",
) -> keras.Model:
    """musicnn's VGG-like baseline (``models.py:vgg``): five 3×3 conv blocks (ReLU, BN, max
    pooling ``pools``, "valid"), flatten → the 256-d ``embedding`` (musicnn's ``pool5`` feature),
    Dropout .5, Dense 50, sigmoid. Fixed input length: the dense layer sees the flattened time
    axis, so patches must be exactly ``n_frames`` (187) long."""
    x_in = keras.Input(shape=(n_frames, n_mels), name="logmel", dtype="float32")
    x = layers.Reshape((n_frames, n_mels, 1), name="expand")(x_in)
    x = _bn("input_bn")(x)
    pools, strides = zip(*pools, strict=True)
    for i, (pool, stride) in enumerate(zip(pools, strides, strict=True), start=1):
        x = layers.Conv2D(num_filters, (3, 3), padding="same", activation="relu",
                          name=f"vgg{i}_conv")(x)  # fmt: skip
        x = _bn(f"vgg{i}_bn")(x)
        x = layers.MaxPooling2D(pool, strides=stride, padding="valid", name=f"vgg{i}_pool")(x)
    flat = layers.Flatten(name="pool5_flat")(x)
    out = layers.Dropout(0.5, name="pool5_dropout")(flat)
    logits = layers.Dense(num_classes, name="logits")(out)
    tags = layers.Activation("sigmoid", name="tags")(logits)
    embedding = layers.Identity(name="embedding")(flat)
    return keras.Model(x_in, [tags, embedding], name=name)


def load_checkpoint_weights(
    model: keras.Model, prefix: str, mapping: dict[str, str] | None = None
) -> keras.Model:
    """Copy the TF1 checkpoint variables at ``prefix`` into ``model`` (shapes checked)."""
    import tensorflow as tf

    reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    shapes = reader.get_variable_to_shape_map()
    for layer_name, scope in (mapping or CHECKPOINT_MAP).items():
        layer = model.get_layer(layer_name)
        if isinstance(layer, layers.BatchNormalization):
            names = ["gamma", "beta", "moving_mean", "moving_variance"]
        else:
            names = ["kernel", "bias"]
        values = []
        for var, target in zip(names, layer.get_weights(), strict=True):
            key = f"{scope}/{var}"
            if key not in shapes:
                raise ValueError(f"checkpoint {prefix} has no variable {key}")
            value = reader.get_tensor(key)
            if value.size != target.size:
                raise ValueError(
                    f"{key}: checkpoint shape {value.shape} does not fit layer "
                    f"{layer_name} weight shape {target.shape}"
                )
            # Conv2D kernels with a full-width input map to Conv1D: (7, C, 1, F) -> (7, C, F)
            values.append(value.reshape(target.shape).astype(np.float32))
        layer.set_weights(values)
    return model


def load_musicnn(
    model: str = "MSD_musicnn",
    cache_dir: str | os.PathLike | None = None,
    index_url: str | None = None,
) -> keras.Model:
    """A pretrained network of the musicnn wheel as a Keras model: (B, T, 96) patches ->
    ``[tags (B, 50), embedding (B, EMBEDDING_DIMS[model])]`` (vgg: T = 187 only).

    Fetches the weights on first use (see :mod:`music_genre.transfer.weights`).
    """
    prefix = checkpoint_prefix(model, cache=cache_dir, index_url=index_url)
    if model.endswith("_vgg"):
        net = build_vgg(VGG_POOLS[model], name=model.lower())
        return load_checkpoint_weights(net, prefix, VGG_CHECKPOINT_MAP)
    net = build_musicnn(name=model.lower())
    return load_checkpoint_weights(net, prefix)


def combined_network(networks: list[keras.Model], name: str = "musicnn_networks") -> keras.Model:
    """Several pretrained networks behind one input: (B, T, 96) -> ``[tags_0, emb_0, tags_1,
    emb_1, ...]``. One ``.keras`` artifact for the service; one network is returned as it is."""
    if len(networks) == 1:
        return networks[0]
    x_in = keras.Input(shape=(None, N_MELS), name="logmel", dtype="float32")
    outputs = []
    for net in networks:
        fixed = net.inputs[0].shape[1]
        outputs += list(net(x_in if fixed is None else layers.Reshape((fixed, N_MELS))(x_in)))
    return keras.Model(x_in, outputs, name=name)
