"""Synthetic street world for the demo, tests and CI (RobotCar cannot be downloaded here).

- :mod:`~seqvpr.data.synth.world`: the route, facades and street furniture;
- :mod:`~seqvpr.data.synth.render`: rendering frames under a condition;
- :mod:`~seqvpr.data.synth.drive`: speed profiles and writing traverses in the
  RobotCar layout (:func:`~seqvpr.data.synth.drive.synthesize`).
"""
