"""Exports of a model for other runtimes: ONNX (`gpt2kit[onnx]`)."""

from gpt2kit.export.onnx_export import ExportError, ExportResult, export_onnx

__all__ = ["ExportError", "ExportResult", "export_onnx"]
