// Opens each file named on the command line with ImageJ 1.x (IJ.openImage: what
// File > Open does for a TIFF, without Bio-Formats) and prints, tab-separated:
// path, getDimensions() (width height channels slices frames), bit depth,
// getPixelSize() (unit, pixel width, height, depth) and the "Info" property,
// after a first line with ImageJ's version.
// Used by tests/contracts/test_outputs_fiji.py; runs headless:
//   java -Djava.awt.headless=true -cp /usr/share/java/ij.jar IjProbe.java FILE...
import ij.IJ;
import ij.ImagePlus;
import ij.measure.Calibration;

public class IjProbe {
    public static void main(String[] args) {
        System.out.println("IMAGEJ " + IJ.getFullVersion());
        for (String path : args) {
            ImagePlus imp = IJ.openImage(path);
            if (imp == null) {
                System.out.println("FAILED\t" + path);
                continue;
            }
            int[] d = imp.getDimensions();
            Calibration c = imp.getCalibration();
            Object info = imp.getProperty("Info");
            String text = info == null ? "" : info.toString().replace('\n', ' ').replace('\t', ' ');
            System.out.println("OPENED\t" + path + "\t" + d[0] + "\t" + d[1] + "\t" + d[2] + "\t"
                + d[3] + "\t" + d[4] + "\t" + imp.getBitDepth() + "\t" + c.getUnit() + "\t"
                + c.pixelWidth + "\t" + c.pixelHeight + "\t" + c.pixelDepth + "\t" + text);
            imp.close();
        }
    }
}
