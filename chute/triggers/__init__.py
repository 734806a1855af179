"""chute.triggers"""
