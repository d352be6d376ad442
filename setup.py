"""Installs the `efficientnet` library package and every dependency of the training application.

Only `efficientnet` (model and training math) is installed into site-packages. The training application
(main.py, configs/, data/, tpu/, training/) runs from the repository root, so those names never shadow
other packages on the user's machine.
"""

import setuptools

setuptools.setup(
    name="efficientnet-tf2",
    version="0.1.0",
    description="EfficientNet B0-B7 for TensorFlow 2 / Keras 3 with the published Cloud TPU training recipe.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    license_files=["LICENSE"],
    python_requires=">=3.10",
    packages=setuptools.find_packages(include=["efficientnet", "efficientnet.*"]),
    install_requires=[
        "tensorflow>=2.20",  # brings Keras 3
        "tensorflow-datasets>=4.9",
        "absl-py>=1.0",
        "ml-collections>=0.1.1",
        "h5py>=3.0",  # reading published Keras weight files (Keras already depends on it)
    ],
    # Pillow: an independent oracle for the AutoAugment ops in tests/data (PIL's ImageOps/ImageEnhance).
    # TensorBoard: only to view the event files a run writes (TensorFlow >= 2.20 no longer installs it; the
    # runs write every summary, hparams included, with TensorFlow alone: training/store/logs.py).
    # matplotlib: only draws model_dir/curves.png (training/store/curves.py); optional because a training job on a TPU
    # VM or in a container needs no picture, and a run without it says so once and writes everything else. The
    # test extra includes it so that the test suite exercises the drawing.
    # ruff: one fast tool for lint, import order and formatting (in place of pylint, flake8, isort and black);
    # tests/test_lint.py runs it with ruff.toml. Pinned: the formatter's output may change between releases.
    extras_require={
        "test": ["pytest>=7", "pillow", "matplotlib", "ruff==0.17.6"],
        "tensorboard": ["tensorboard"],
        "plots": ["matplotlib"],
    },
)
