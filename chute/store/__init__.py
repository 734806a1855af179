"""chute.store"""
