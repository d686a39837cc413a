"""The runnable example: a convolutional mel VAE (``model``), an audio-folder / synthetic-speech
datamodule (``data``, ``synth``) and the LightningCLI entry point (``train``)."""
