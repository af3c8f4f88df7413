"""Bar data: loaders, validation, bundled EURUSD H1 set, features."""
