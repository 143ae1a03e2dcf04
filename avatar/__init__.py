"""avatar: 3D faces and talking heads that run on a CPU.

Stages live in sub-packages (see DESIGN in the README): ``facemodel`` (morphable
models), ``camera``, ``io`` (mesh files), and the later stages as they land.
"""

__version__ = "0.1.0"
