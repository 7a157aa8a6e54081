"""Running TensorFlow/Keras models. TensorFlow is imported inside functions only."""
