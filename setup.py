"""Package list for setuptools; all other metadata is in pyproject.toml.

``traces/`` (the shipped graph templates) is installed as ``hwsim/_traces`` so
that a non-editable install can simulate zoo models without torch.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["hwsim", "hwsim.*", "accelerators", "accelerators.*"])
    + ["hwsim._traces"],
    package_dir={"hwsim._traces": "traces"},
)
