from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EncodedFeature(_message.Message):
    __slots__ = ("payload", "timesteps", "latent_shape", "codec", "model_id", "request_id", "erasure_mask", "top_k", "soft_bits", "coded_bits", "hard_llr", "on_failure", "model_key")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TIMESTEPS_FIELD_NUMBER: _ClassVar[int]
    LATENT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ERASURE_MASK_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    SOFT_BITS_FIELD_NUMBER: _ClassVar[int]
    CODED_BITS_FIELD_NUMBER: _ClassVar[int]
    HARD_LLR_FIELD_NUMBER: _ClassVar[int]
    ON_FAILURE_FIELD_NUMBER: _ClassVar[int]
    MODEL_KEY_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    timesteps: int
    latent_shape: _containers.RepeatedScalarFieldContainer[int]
    codec: str
    model_id: str
    request_id: str
    erasure_mask: bytes
    top_k: int
    soft_bits: int
    coded_bits: int
    hard_llr: float
    on_failure: str
    model_key: bytes
    def __init__(self, payload: _Optional[bytes] = ..., timesteps: _Optional[int] = ..., latent_shape: _Optional[_Iterable[int]] = ..., codec: _Optional[str] = ..., model_id: _Optional[str] = ..., request_id: _Optional[str] = ..., erasure_mask: _Optional[bytes] = ..., top_k: _Optional[int] = ..., soft_bits: _Optional[int] = ..., coded_bits: _Optional[int] = ..., hard_llr: _Optional[float] = ..., on_failure: _Optional[str] = ..., model_key: _Optional[bytes] = ...) -> None: ...

class ClassScore(_message.Message):
    __slots__ = ("label", "prob", "class_index")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    PROB_FIELD_NUMBER: _ClassVar[int]
    CLASS_INDEX_FIELD_NUMBER: _ClassVar[int]
    label: str
    prob: float
    class_index: int
    def __init__(self, label: _Optional[str] = ..., prob: _Optional[float] = ..., class_index: _Optional[int] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("request_id", "model_id", "top", "edge_compute_ms", "queue_ms", "batch_size", "compute_device", "instance", "block_decoded", "on_failure")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    TOP_FIELD_NUMBER: _ClassVar[int]
    EDGE_COMPUTE_MS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_DEVICE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    BLOCK_DECODED_FIELD_NUMBER: _ClassVar[int]
    ON_FAILURE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model_id: str
    top: _containers.RepeatedCompositeFieldContainer[ClassScore]
    edge_compute_ms: float
    queue_ms: float
    batch_size: int
    compute_device: str
    instance: str
    block_decoded: bool
    on_failure: str
    def __init__(self, request_id: _Optional[str] = ..., model_id: _Optional[str] = ..., top: _Optional[_Iterable[_Union[ClassScore, _Mapping]]] = ..., edge_compute_ms: _Optional[float] = ..., queue_ms: _Optional[float] = ..., batch_size: _Optional[int] = ..., compute_device: _Optional[str] = ..., instance: _Optional[str] = ..., block_decoded: _Optional[bool] = ..., on_failure: _Optional[str] = ...) -> None: ...

class ModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfoReply(_message.Message):
    __slots__ = ("model_id", "codec", "timesteps", "latent_shape", "payload_bits", "classes", "compute_device", "max_batch_size")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    TIMESTEPS_FIELD_NUMBER: _ClassVar[int]
    LATENT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_BITS_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_DEVICE_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    codec: str
    timesteps: int
    latent_shape: _containers.RepeatedScalarFieldContainer[int]
    payload_bits: int
    classes: _containers.RepeatedScalarFieldContainer[str]
    compute_device: str
    max_batch_size: int
    def __init__(self, model_id: _Optional[str] = ..., codec: _Optional[str] = ..., timesteps: _Optional[int] = ..., latent_shape: _Optional[_Iterable[int]] = ..., payload_bits: _Optional[int] = ..., classes: _Optional[_Iterable[str]] = ..., compute_device: _Optional[str] = ..., max_batch_size: _Optional[int] = ...) -> None: ...

class EncodedStep(_message.Message):
    __slots__ = ("payload", "step", "timesteps", "latent_shape", "codec", "model_id", "request_id", "erasure_mask", "top_k")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TIMESTEPS_FIELD_NUMBER: _ClassVar[int]
    LATENT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ERASURE_MASK_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    step: int
    timesteps: int
    latent_shape: _containers.RepeatedScalarFieldContainer[int]
    codec: str
    model_id: str
    request_id: str
    erasure_mask: bytes
    top_k: int
    def __init__(self, payload: _Optional[bytes] = ..., step: _Optional[int] = ..., timesteps: _Optional[int] = ..., latent_shape: _Optional[_Iterable[int]] = ..., codec: _Optional[str] = ..., model_id: _Optional[str] = ..., request_id: _Optional[str] = ..., erasure_mask: _Optional[bytes] = ..., top_k: _Optional[int] = ...) -> None: ...

class StepPrediction(_message.Message):
    __slots__ = ("request_id", "model_id", "step", "top", "edge_compute_ms", "queue_ms", "batch_size", "compute_device", "instance")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOP_FIELD_NUMBER: _ClassVar[int]
    EDGE_COMPUTE_MS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_DEVICE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model_id: str
    step: int
    top: _containers.RepeatedCompositeFieldContainer[ClassScore]
    edge_compute_ms: float
    queue_ms: float
    batch_size: int
    compute_device: str
    instance: str
    def __init__(self, request_id: _Optional[str] = ..., model_id: _Optional[str] = ..., step: _Optional[int] = ..., top: _Optional[_Iterable[_Union[ClassScore, _Mapping]]] = ..., edge_compute_ms: _Optional[float] = ..., queue_ms: _Optional[float] = ..., batch_size: _Optional[int] = ..., compute_device: _Optional[str] = ..., instance: _Optional[str] = ...) -> None: ...
