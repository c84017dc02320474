"""earth-resnet: Earth-observation scene classification, ResNet tuned by Bayesian optimisation.

TensorFlow's C++ start-up chatter is silenced here, once, before any module of the
package (or a notebook kernel started by it, which inherits the environment) imports it
(:mod:`earth_lib.startup`).
"""

from earth_lib.startup import quiet_tensorflow

quiet_tensorflow()
