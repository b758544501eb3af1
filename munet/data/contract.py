"""The decoded-sample contract: the arrays of one training sample, as every reader produces them
(:mod:`munet.data.decode`) and every trainer consumes them (:mod:`munet.train.step`).

The decoded-sample contract (S = ``data.image_size``, N = ``data.cloth_points``; float32 unless
said otherwise):

================= ============ ==================================================================
``image``         (3, S, S)    RGB, uint8 in [0, 255]
``mask``          (1, S, S)    uint8 in {0, 1}
``K``             (3, 3)       intrinsics in pixels of the S × S image
``body_vertices`` (V, 3)       camera frame, metres
``body_joints``   (17, 3)      COCO-17, camera frame, metres
``joints_2d``     (17, 2)      pixels of the S × S image
``body_pose``     (P,)         body-model pose parameters
``body_shape``    (B,)         body-model shape parameters
``cloth_points``  (N, 3)       uniform samples of the clothed surface, camera frame, metres
``cloth_normals`` (N, 3)       their outward unit normals
================= ============ ==================================================================

The image and mask stay 8-bit until they reach the training device, a quarter of the bytes of
float32 in Ray's object store and on the way to the GPU: :data:`UINT8_MEMBERS` gives the divisor
that makes them floats there (:func:`munet.train.step.batch_to_tensors`).

"""

from __future__ import annotations

UINT8_MEMBERS = {"image": 255.0, "mask": 1.0}
"""The contract's 8-bit members and the divisor that turns each into float32 on the device: the
image into [0, 1], the mask into {0, 1}."""
