"""chute.ml"""
