"""sjscc: split inference over a digital link with spiking joint source-channel codecs."""

__version__ = "0.1.0"
