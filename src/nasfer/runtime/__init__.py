"""Run time: everything a deployed model needs, without torch.

Face detection (`faces`, `yunet`), crops and preprocessing of faces (`crops`), the ONNX Runtime
classifier (`engine`), the Python API (`api.EmotionRecognizer`), image decoding (`images`), video with
tracking (`video`, `timeline`) and drawing (`annotate`). Nothing here imports torch; the training side
(`nasfer.train`, `nasfer.nas`, `nasfer.export`, ...) may import from here, never the reverse.
"""
