"""chute.cli"""
