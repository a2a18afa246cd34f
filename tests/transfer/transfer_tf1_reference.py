"""Run musicnn's ORIGINAL TF1 inference graph (from the checkpoint's ``.meta``) for comparison.

The ``.meta`` file holds the exact graph musicnn's authors trained and exported; importing it
needs no ``tf.compat.v1.layers`` code. We keep only the inference sub-graph (the training part
no longer imports in TF 2.x because of stale ``_output_shapes``), and feed the checkpoint values
into the variables' ``/read`` tensors, with ``is_training = False``.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

LOGITS = "model/dense_1/BiasAdd"
PENULTIMATE = "model/batch_normalization_10/batchnorm/add_1"
#: the vgg models: logits, and the flattened pool5 (musicnn's ``pool5`` feature)
VGG_LOGITS = "model/dense/BiasAdd"
VGG_POOL5 = "model/Flatten/flatten/Reshape"


def run_tf1_graph(prefix: str, patches: np.ndarray, outputs: tuple[str, str] = (LOGITS, PENULTIMATE)
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(tags, embedding) of the original graph for (B, 187, 96) float32 patches; ``outputs``
    names the logits and embedding tensors (musicnn by default, ``(VGG_LOGITS, VGG_POOL5)``)."""
    LOGITS, PENULTIMATE = outputs  # noqa: N806
    meta = meta_graph_pb2.MetaGraphDef()
    with open(prefix + ".meta", "rb") as fh:
        meta.ParseFromString(fh.read())
    graph_def = tf.compat.v1.graph_util.extract_sub_graph(meta.graph_def, [LOGITS, PENULTIMATE])
    for node in graph_def.node:
        node.attr.pop("_output_shapes", None)
        node.device = ""
    reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
        feeds = {}
        for node in graph_def.node:
            if node.op in ("VariableV2", "Variable"):
                feeds[graph.get_tensor_by_name(node.name + "/read:0")] = reader.get_tensor(node.name)
            elif node.op == "Placeholder":
                tensor = graph.get_tensor_by_name(node.name + ":0")
                if tensor.dtype == tf.bool:
                    feeds[tensor] = False
                else:
                    feeds[tensor] = patches
        with tf.compat.v1.Session(graph=graph) as sess:
            logits, penultimate = sess.run(
                [graph.get_tensor_by_name(LOGITS + ":0"), graph.get_tensor_by_name(PENULTIMATE + ":0")],
                feed_dict=feeds,
            )
    return 1.0 / (1.0 + np.exp(-logits)), penultimate
