/* Linked with one layer's static library whole (CMakeLists.txt, "one static
 * library per layer") and the layers below it, nothing above: the link fails
 * if the layer calls up. It is built, never run. */
int main(void)
{
    return 0;
}
