"""Reading a model's graph for the whole-model tools, and copying it with layers replaced.

`fry` and `prune` follow the model's own nodes, as `keras.models.clone_model`
does: which layer feeds which, through nested models, never the order of a
layer list or the layers' names (unique within one model, not across nested
ones). This module is the one place that reads Keras's node structure
(`_inbound_nodes`, `_keras_history`, a functional model's `_nodes`).
"""

import keras
import numpy as np
from keras import ops
from keras.src.models.functional import Functional

from keras_fried.layers import registry

try:  # how Keras names a node in a functional model's `_nodes`
    from keras.src.ops.function import make_node_key
except ImportError:  # pragma: no cover - a Keras that moved it

    def make_node_key(operation, node_index):
        return f"{id(operation)}_ib-{node_index}"


# The layers with a kernel that the tools replace or prune.
KERNEL_LAYERS = (keras.layers.Dense, keras.layers.Conv2D)
# Layers that map each feature (last axis) on its own, keeping the axis: a
# unit of the layer before them is still one feature after them.
CHANNELWISE = (
    keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU,
    keras.layers.Softmax, keras.layers.Dropout, keras.layers.GaussianNoise, keras.layers.GaussianDropout,
    keras.layers.SpatialDropout1D, keras.layers.SpatialDropout2D, keras.layers.MaxPooling1D,
    keras.layers.MaxPooling2D, keras.layers.AveragePooling1D, keras.layers.AveragePooling2D,
    keras.layers.GlobalAveragePooling1D, keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling1D, keras.layers.GlobalMaxPooling2D,
)
# A consumer that is an output of the model, not a layer.
MODEL_OUTPUT = "model output"


def check_model(model, tool):
    """Raises a ValueError unless `model` is a built model with known inputs (what cloning needs)."""
    if not isinstance(model, keras.Model) or not model.built or not getattr(model, "inputs", None):
        raise ValueError(
            f"Received an invalid value for argument `model`: {tool} needs a built Sequential or "
            "functional model (one with known inputs, e.g. made with keras.Input or trained once). "
            f"Received: model={model!r}"
        )


def _functional(model, tool):
    """The functional graph of a Sequential or functional model, or a ValueError naming it."""
    graph = model._functional if isinstance(model, keras.Sequential) else model
    if not isinstance(graph, Functional):
        raise ValueError(
            f"Received an invalid value for argument `model`: {tool} follows the graph of Sequential "
            f"and functional models, and {model.name!r} is a subclassed {type(model).__name__} (or an "
            "unbuilt Sequential), whose graph Keras does not record. Rebuild it as a functional model."
        )
    return graph


class ModelGraph:
    """The leaf layers of a model (nested models included) and which feeds which.

    Args:
        model: A built Sequential or functional model.
        tool: The tool's name, for error messages.

    Raises:
        ValueError: For a model that is not built, a subclassed model (nested
            ones included), or a layer used at more than one place (shared
            layers), naming the layer.
    """

    def __init__(self, model, tool):
        check_model(model, tool)
        self.model = model
        self.tool = tool
        self.layers = []  # leaf layers, in graph order
        self._node = {}  # id(layer or nested model) -> its one node in the model that holds it
        self._owner = {}  # id(layer or nested model) -> that model
        self._input_position = {}  # id(input tensor of a model) -> (model, position)
        self._walk(model)
        self._producers = {id(layer): self._input_producers(layer) for layer in self.layers}
        self._consumers = {id(layer): [] for layer in self.layers}
        for layer in self.layers:
            for producer in self._producers[id(layer)]:
                if producer is not None:
                    self._consumers[id(producer)].append(layer)
        for tensor in keras.tree.flatten(model.outputs):
            producer = self._producer(tensor)
            if producer is not None:
                self._consumers[id(producer)].append(MODEL_OUTPUT)

    def _walk(self, model):
        graph = _functional(model, self.tool)
        for position, tensor in enumerate(keras.tree.flatten(graph.inputs)):
            self._input_position[id(tensor)] = (model, position)
        for operation in graph.operations:
            if isinstance(operation, keras.layers.InputLayer):
                continue
            if id(operation) in self._owner:
                raise self._shared(operation, "in two models")
            nodes = [
                node for index, node in enumerate(operation._inbound_nodes)
                if make_node_key(operation, index) in graph._nodes
            ]
            if len(nodes) != 1:
                raise self._shared(operation, f"{len(nodes)} times in model {model.name!r}")
            self._node[id(operation)] = nodes[0]
            self._owner[id(operation)] = model
            if isinstance(operation, keras.Model):
                self._walk(operation)
            else:
                self.layers.append(operation)

    def _shared(self, layer, where):
        return ValueError(
            f"Received an invalid value for argument `model`: layer {layer.name!r} is used {where}. "
            f"{self.tool} replaces or prunes each layer at the one place it is used, so it does not "
            "take models with shared layers. Give each use its own layer."
        )

    def _producer(self, tensor):
        """The leaf layer whose output `tensor` is (through nested models), None for a model input."""
        while True:
            operation, _, index = tensor._keras_history
            if isinstance(operation, keras.layers.InputLayer):
                owner, position = self._input_position[id(tensor)]
                if owner is self.model:
                    return None
                tensor = self._node[id(owner)].input_tensors[position]
            elif isinstance(operation, keras.Model):
                tensor = keras.tree.flatten(_functional(operation, self.tool).outputs)[index]
            else:
                return operation

    def _input_producers(self, layer):
        return [self._producer(tensor) for tensor in self._node[id(layer)].input_tensors]

    def input_shape(self, layer):
        """The shape of `layer`'s (first) input in the model."""
        return tuple(self._node[id(layer)].input_tensors[0].shape)

    def producers(self, layer):
        """The leaf layers whose outputs are `layer`'s inputs (None for a model input)."""
        return list(self._producers[id(layer)])

    def consumers(self, layer):
        """The leaf layers that take `layer`'s output, and `MODEL_OUTPUT` if it is a model output."""
        return list(self._consumers[id(layer)])

    def keeps_features(self, layer):
        """Whether `layer` maps each feature of its single input on its own, keeping the last axis."""
        if isinstance(layer, CHANNELWISE):
            return True
        if type(layer) is keras.layers.BatchNormalization:
            return layer.axis in (-1, len(self.input_shape(layer)) - 1)
        return type(layer) is keras.layers.Flatten and len(self.input_shape(layer)) == 2

    def feeder(self, layer):
        """The Dense or Conv2D whose output reaches `layer` alone, through layers that keep features.

        None when `layer` has several inputs, when something else lies on the
        way, or when that output also goes elsewhere (a branch): then the two
        layers do not form a chain.
        """
        current = layer
        while True:
            producers = self.producers(current)
            if len(producers) != 1 or producers[0] is None:
                return None
            producer = producers[0]
            if len(self.consumers(producer)) != 1:
                return None
            if type(producer) in KERNEL_LAYERS:
                return producer
            if not self.keeps_features(producer):
                return None
            current = producer

    def output_layers(self):
        """The layers that produce the model's outputs, through trailing layers that keep features."""
        found = []
        for tensor in keras.tree.flatten(self.model.outputs):
            layer = self._producer(tensor)
            while layer is not None and layer not in found:
                found.append(layer)
                producers = self.producers(layer)
                if type(layer) in KERNEL_LAYERS or registry.is_registered(layer) or len(producers) != 1:
                    break
                if not self.keeps_features(layer):
                    break
                layer = producers[0]
        return found

    def path(self, layer):
        """`layer`'s name, prefixed by the nested models that hold it ("encoder/dense")."""
        names = [layer.name]
        owner = self._owner[id(layer)]
        while owner is not self.model:
            names.append(owner.name)
            owner = self._owner[id(owner)]
        return "/".join(reversed(names))

    def find(self, item, argument="layers"):
        """The leaf layer `item` names: a layer of the model, its path, or a name no other leaf has."""
        if isinstance(item, keras.layers.Layer):
            if not any(layer is item for layer in self.layers):
                raise ValueError(
                    f"Received an invalid value for argument `{argument}`: layer {item.name!r} is not "
                    f"a layer of this model (nor of a model nested in it). Received: {item!r}"
                )
            return item
        matches = [layer for layer in self.layers if self.path(layer) == item]
        matches = matches or [layer for layer in self.layers if layer.name == item]
        if len(matches) > 1:
            raise ValueError(
                f"Received an invalid value for argument `{argument}`: the name {item!r} is ambiguous, "
                f"{len(matches)} layers of nested models have it: "
                f"{sorted(self.path(layer) for layer in matches)}. Pass the path or the layer itself."
            )
        if not matches:
            raise ValueError(
                f"Received an invalid value for argument `{argument}`: the model has no layer named "
                f"{item!r}. Its layers: {[self.path(layer) for layer in self.layers]}"
            )
        return matches[0]


def clone_replacing(model, replace):
    """A copy of `model` in which `replace(layer)` swaps layers; the others keep their weights.

    `replace` is called with each original leaf layer (by object) and returns
    the new layer, or None to keep a copy of `layer`. The model is rebuilt
    with `keras.models.clone_model(..., recursive=True)`, so layers of nested
    models are offered too; the original model is not modified (not even
    called: its layers get no new nodes).

    Raises:
        ValueError: If Keras cannot rebuild the model (a subclassed model).
    """
    originals = {}

    def clone(layer):
        new = replace(layer)
        if new is None:
            new = layer.__class__.from_config(layer.get_config())
            originals[id(new)] = layer
        return new

    try:
        copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    except ValueError as error:
        raise ValueError(
            "keras_fried rebuilds Sequential and functional models (and such models nested in "
            f"them) with keras.models.clone_model, which could not rebuild this "
            f"{type(model).__name__}: {error}"
        ) from error
    for layer in leaf_layers(copy):
        if id(layer) in originals:
            layer.set_weights(originals[id(layer)].get_weights())
    return copy


def leaf_layers(model):
    """Every layer of `model` that is not itself a model, nested models included, in order."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if not isinstance(layer, keras.Model)
    ]


def check_data(model, data):
    """`data` as a float32 array, or a ValueError unless it is a non-empty batch of the model's input."""
    data = np.asarray(data, dtype="float32")
    if data.ndim == 0 or len(data) == 0:
        raise ValueError(
            f"Received an invalid value for argument `data`: it is empty. Received: data.shape={data.shape}"
        )
    expected = tuple(model.inputs[0].shape[1:])
    if len(model.inputs) != 1 or data.shape[1:] != expected or len(data.shape) != len(expected) + 1:
        raise ValueError(
            f"Received an invalid value for argument `data`: expected a batch of the model's input, "
            f"shape (n, {', '.join(map(str, expected))}). Received: data.shape={data.shape}"
        )
    return data


class _Recorder(keras.layers.Layer):
    """Calls a layer and keeps the inputs it saw (eager calls only)."""

    def __init__(self, inner, **kwargs):
        super().__init__(name=f"record_{inner.name}", **kwargs)
        self.inner = inner
        self.seen = []

    def call(self, inputs):
        self.seen.append(ops.convert_to_numpy(inputs))
        return self.inner(inputs)

    def compute_output_spec(self, inputs):
        # Cloning calls layers on symbolic tensors: nothing to record there, and
        # `inner` is asked for its output spec without being called (no new node).
        return self.inner.compute_output_spec(inputs)


def record_inputs(model, layers, data, batch_size):
    """`{id(layer): inputs}`: what each of `layers` sees when `model` runs on `data`.

    A Dense layer's inputs come as a matrix (rows: every vector it mapped).
    The model runs as a copy in which `layers` are wrapped and the other
    layers are copies, so nothing in the original changes.
    """
    wanted = {id(layer) for layer in layers}
    recorders = {}

    def wrap(layer):
        if id(layer) not in wanted:
            return None
        recorders[id(layer)] = _Recorder(layer)
        return recorders[id(layer)]

    recording = clone_replacing(model, wrap)
    for start in range(0, len(data), batch_size):
        recording(data[start : start + batch_size], training=False)
    recorded = {}
    for key, recorder in recorders.items():
        x = np.concatenate(recorder.seen)
        recorded[key] = x.reshape(-1, x.shape[-1]) if type(recorder.inner) is keras.layers.Dense else x
    return recorded
