"""chute.spec"""
