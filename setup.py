"""Package list for setuptools; all other metadata is in pyproject.toml.

``traces/`` (the shipped graph templates) is installed as ``hwsim/_traces`` so
that a non-editable install can simulate zoo models without torch, and
``workloads/`` as ``hwsim/_workloads`` and ``sweeps/`` as ``hwsim/_sweeps`` so
that an installed hwsim names them without a path (``hwsim simulate bert-base``,
``hwsim sweep bert-seq-bw``: hwsim.workload.shipped) and the validation cases that
name a workload file run from an installed copy too.
"""

from setuptools import Extension, find_packages, setup

setup(
    packages=find_packages(include=["hwsim", "hwsim.*"])
    + ["hwsim._traces", "hwsim._workloads", "hwsim._workloads.schedules", "hwsim._sweeps"],
    package_dir={"hwsim._traces": "traces", "hwsim._workloads": "workloads",
                 "hwsim._workloads.schedules": "workloads/schedules",
                 "hwsim._sweeps": "sweeps"},
    # the event loop's compiled core (hwsim.engine.events): optional, so that an
    # install without a C compiler succeeds and runs the same loop in Python;
    ext_modules=[Extension("hwsim.engine._cevents", ["hwsim/engine/_cevents.c"],
                           optional=True),
                 # the Ascend analytical attention walk's numbers
                 # (hwsim.accelerators.ascend.cv_pipeline): optional too, the same
                 # numbers as the Python walk to the last bit, so no multiply-add fused
                 Extension("hwsim.accelerators.ascend._cwalk",
                           ["hwsim/accelerators/ascend/_cwalk.c"],
                           extra_compile_args=["-ffp-contract=off"], optional=True)],
)
