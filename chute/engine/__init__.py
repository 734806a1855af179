"""chute.engine"""
