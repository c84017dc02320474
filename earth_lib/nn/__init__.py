"""The network, its augmentation and its training.

``model`` (the pre-activation ResNet builder, pure), ``layers`` (its one custom layer),
``augmentation`` (the method's six values as one affine resampling, and the ``tf.data``
pipeline), ``policies`` (policy-free augmentation) and ``training`` (fitting, the search
objective, prediction).

Importing this package loads nothing; each module is imported by name (TensorFlow is slow
to load, and a parameter check must not need it).
"""
